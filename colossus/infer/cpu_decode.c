/* One forward step of colossus.model.gpt.GPT on CPU, in one call: the same network as GPT.forward
 * (embedding, RMSNorm, q/kv projections, QK-norm, RoPE, attention over the KV pool, output projection,
 * ReLU^2 or SwiGLU MLP, final norm, output head) for a batch of rows, each one token of one KV-pool slot:
 * the running requests' next tokens and the prompts of newly admitted ones together. Written for few
 * rows, where PyTorch spends more on launching ~200 small ops and on streaming float32 weights than on
 * arithmetic, and blocked so that at 32 rows and more its matmuls run near the machine's peak.
 *
 * Matmul weights are packed in panels (see matmul), float32 or bfloat16 (the upper half of a float32:
 * widened on load, half the memory traffic); the KV pool holds float32 or bfloat16 too (rounded to nearest
 * even when stored); every product and sum is float32. A row's result does not
 * depend on the other rows of the batch nor on the number of threads: each output is the same chain of
 * multiply-adds in the same order, computed by one thread.
 *
 * C with GCC/Clang vector extensions, no intrinsics: vectors of the machine's width (VL floats) and a
 * register blocking sized to its register file (MR rows x NV vectors of accumulators), both chosen below
 * from what the compiler targets (-march=native): AVX-512, AVX2, NEON, or 128-bit vectors elsewhere.
 * OpenMP where the compiler has it. Built and loaded by colossus/infer/cpu_decode.py, which reads the
 * blocking back (colossus_kernel_info) to pack the weights to match. */

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The vector unit: VL floats per register, REGS registers. */
#if defined(__AVX512F__)
#define VL 16
#define REGS 32
#define ISA "AVX-512"
#elif defined(__AVX__)
#define VL 8
#define REGS 16
#ifdef __AVX2__
#define ISA "AVX2"
#else
#define ISA "AVX"
#endif
#elif defined(__ARM_NEON) || defined(__aarch64__)
#define VL 4
#define REGS 32
#define ISA "NEON"
#elif defined(__SSE2__)
#define VL 4
#define REGS 16
#define ISA "SSE2"
#else
#define VL 4
#define REGS 16
#define ISA "generic"
#endif

/* The matmul's register blocking: MR rows of X against NV vectors (P = NV * VL outputs) of a weight
 * panel, MR * NV accumulators, NV weight vectors and a broadcast x in registers: enough accumulators to hide
 * the multiply-add's latency (4-5 cycles, 2 a cycle), few enough that none spills.
 * - AVX-512 (32 registers): 12 x 2, 24 accumulators, a broadcast load for each 2 multiply-adds. Measured
 *   against 6 x 4, 4 x 4, 8 x 2, 10 x 2, 14 x 2 and 8 x 4 in the ref8.7m step at 32 rows: the fastest.
 * - AVX2, SSE (16 registers): 5 x 2, 10 accumulators. 6 x 2 needs 15 of the 16 and GCC 12 spills one
 *   accumulator (a store and a reload each step, a chain of ~10 cycles): 64% of the peak at 512 rows, where
 *   5 x 2 runs at 85%.
 * - NEON (32 registers of 4): 5 x 4, 20 accumulators, with fewer loads per multiply-add than x 2 blockings;
 *   the x of each row stays in a register of its own (fmla by element), so 6 x 4 needs 34 and GCC 12 spills.
 * NV is even: bfloat16 weights widen in pairs of vectors. -DMR=.. -DNV=.. override them (P must match the
 * packing in cpu_decode.py, which reads it from colossus_kernel_info). */
#ifndef MR
#if REGS >= 32 && VL >= 16
#define MR 12
#else
#define MR 5
#endif
#endif
#ifndef NV
#if REGS >= 32 && VL < 16
#define NV 4
#else
#define NV 2
#endif
#endif
#define P (NV * VL)
#define NC_MAX 8 /* attention keeps heads of up to NC_MAX * 2 VL values in registers */
#if NV % 2 || MR < 1 || MR > 16
#error "NV must be even and MR in 1..16"
#endif

/* What cpu_decode.py needs to pack weights for this build, and what benchmarks print: the vector width
 * in floats, the register count, the blocking and the panel width. */
const char *colossus_kernel_isa(void) { return ISA; }

void colossus_kernel_info(int *out) {
    out[0] = VL, out[1] = REGS, out[2] = MR, out[3] = NV, out[4] = P;
}

typedef struct {
    const void *q, *kv, *proj, *up, *down; /* packed panels of (out, in) */
    const float *attn_norm, *mlp_norm;    /* (C,) */
    const float *q_norm, *k_norm;         /* (hd,), or NULL without QK-norm */
} Layer;

typedef struct {
    int n_layer, C, H, Hkv, hd, F, V, swiglu, bf16, kv_bf16, slots, max_len;
    int threads; /* OpenMP threads for one call (where built with OpenMP): panels and heads are shared out */
    float eps;
    const float *embed;      /* (V, C) float32 */
    const float *final_norm; /* (C,) */
    const void *head;        /* (V, C), packed */
    const float *cos, *sin;  /* (max_len, hd / 2): rope_tables of positions 0..max_len-1 */
    void *k_pool, *v_pool;   /* (n_layer, slots, Hkv, max_len, hd), float32, or bfloat16 where kv_bf16 */
    const Layer *layers;
    double *prof; /* NULL, or seconds added up by the call: [0] in matmuls, [1] in attention, [2] in all */
} Model;

static inline double now(void) {
#ifdef _OPENMP
    return omp_get_wtime();
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
#endif
}

/* exp(x) for x <= 0 (softmax, sigmoid of a non-negative argument), branch-free so that loops of it
 * vectorise: 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2], p of degree 6 (relative error < 2e-7). */
static inline float exp_neg(float x) {
    x = x < -87.0f ? -87.0f : x;
    float n = floorf(x * 1.44269504f + 0.5f);
    float r = x - n * 0.693145752f - n * 1.42860677e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f + r * (0.00833333377f
              + r * 0.00138888892f)))));
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

/* GCC/Clang vector extensions: one machine register of floats, and of 32-bit integers. */
typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vfu __attribute__((vector_size(VL * 4), aligned(4))); /* an unaligned load */
typedef uint32_t vw __attribute__((vector_size(VL * 4)));
typedef uint32_t vwu __attribute__((vector_size(VL * 4), aligned(4)));
typedef int32_t vi __attribute__((vector_size(VL * 4)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

static inline vf load(const float *p) { return *(const vfu *)p; }

/* float32 -> bfloat16, rounded to nearest even as PyTorch rounds (a NaN stays a quiet NaN) */
static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* element i of a pool row, float32 or bfloat16 */
static inline float kv_at(const void *X, int bf16, size_t i) {
    if (!bf16) return ((const float *)X)[i];
    uint32_t u = (uint32_t)((const uint16_t *)X)[i] << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* exp(x) for x <= 0 on VL lanes: exp_neg's method, n rounded by the 1.5 * 2^23 trick (to even on ties) */
static inline vf exp_negv(vf x) {
    const vi low = x < -87.0f;
    x = (vf)(((vi)x & ~low) | ((vi)((vf){0} - 87.0f) & low));
    vf n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
    vf r = x - n * 0.693145752f - n * 1.42860677e-6f;
    vf p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f + r * (0.00833333377f
           + r * 0.00138888892f)))));
    return p * (vf)((__builtin_convertvector(n, vi) + 127) << 23);
}

static inline float hsum(vf a) { /* a tree: log2(VL) dependent adds instead of VL */
    v4 s4;
#if VL >= 8
    v8 s8;
#if VL == 16
    v8 lo, hi;
    memcpy(&lo, &a, sizeof lo);
    memcpy(&hi, (const char *)&a + sizeof lo, sizeof hi);
    s8 = lo + hi;
#else
    memcpy(&s8, &a, sizeof s8);
#endif
    v4 l4, h4;
    memcpy(&l4, &s8, sizeof l4);
    memcpy(&h4, (const char *)&s8 + sizeof l4, sizeof h4);
    s4 = l4 + h4;
#else
    memcpy(&s4, &a, sizeof s4);
#endif
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

static float sum(const float *a, int n) {
    vf acc = {0};
    int k = 0;
    for (; k + VL <= n; k += VL) acc += load(a + k);
    float s = hsum(acc);
    for (; k < n; k++) s += a[k];
    return s;
}

static float dot(const float *a, const float *b, int n) {
    vf acc = {0};
    int k = 0;
    for (; k + VL <= n; k += VL) acc += load(a + k) * load(b + k);
    float s = hsum(acc);
    for (; k < n; k++) s += a[k] * b[k];
    return s;
}

/* The P weights of panel row i (float32), or the same from bfloat16 stored as pairs (out j, out j + VL) per
 * 32-bit word in each 2 VL outputs: a bfloat16 is the upper half of a float32, so a shift and a mask widen
 * 2 VL of them. */
static inline void load_w(const void *W, int bf16, size_t i, vf w[NV]) {
    if (bf16) {
        const uint32_t *p = (const uint32_t *)((const uint16_t *)W + i);
        for (int j = 0; j < NV / 2; j++) {
            vw a = *(const vwu *)(p + j * VL);
            w[2 * j] = (vf)(a << 16), w[2 * j + 1] = (vf)(a & 0xffff0000u);
        }
    } else {
        for (int j = 0; j < NV; j++) w[j] = load((const float *)W + i + j * VL);
    }
}

/* R (1..MR) rows of X against one panel: Y[r, j] (+)= sum_k W[j, k] X[r, k] for j < n (n <= P). Each
 * output is the same chain of multiply-adds over k whatever R is: a row's result does not depend on the
 * batch. */
static inline __attribute__((always_inline)) void panel(const void *Wp, int bf16, const float *X, int K, float *Y,
                                                      int ldy, int add, int R, int n, const char *next) {
    vf acc[MR][NV];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NV; j++) acc[r][j] = (vf){0};
    const size_t row_bytes = (size_t)P * (bf16 ? 2 : 4);
    for (int k = 0; k < K; k++) {
        vf w[NV];
        if (next) /* the next panel, a row of it a step: it arrives from memory while this one is in use */
            for (size_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(next + k * row_bytes + b);
        load_w(Wp, bf16, (size_t)k * P, w);
        for (int r = 0; r < R; r++) {
            const float x = X[(size_t)r * K + k];
            for (int j = 0; j < NV; j++) acc[r][j] += x * w[j];
        }
    }
    for (int r = 0; r < R; r++) {
        float *y = Y + (size_t)r * ldy;
        if (n == P) {
            for (int j = 0; j < NV; j++) {
                vfu *yj = (vfu *)(y + j * VL);
                *yj = add ? *yj + acc[r][j] : acc[r][j];
            }
        } else {
            for (int i = 0; i < n; i++) y[i] = add ? y[i] + acc[r][i / VL][i % VL] : acc[r][i / VL][i % VL];
        }
    }
}

/* Y[m, n] (+)= sum_k W[n, k] X[m, k] for m < M, n < N, W packed; rows of X and Y are K and ldy apart. A
 * panel stays in cache while the rows of X pass over it, MR at a time; threads share out the panels. */
static void matmul(const void *W, int bf16, const float *X, float *Y, int M, int N, int K, int ldy, int add) {
#pragma omp for schedule(static)
    for (int n0 = 0; n0 < N; n0 += P) {
        const void *Wp = bf16 ? (const void *)((const uint16_t *)W + (size_t)n0 * K)
                              : (const void *)((const float *)W + (size_t)n0 * K);
        int n = N - n0 < P ? N - n0 : P;
        const size_t panel_bytes = (size_t)P * K * (bf16 ? 2 : 4);
        const char *next = n0 + P < N ? (const char *)Wp + panel_bytes : NULL;
        /* ceil(M / MR) blocks of near-equal rows: 32 rows as 6 6 5 5 5 5, not 6 x 5 and a block of 2 whose
         * few accumulators would wait on the multiply-add's latency */
        const int blocks = (M + MR - 1) / MR;
        for (int i = 0, m0 = 0; i < blocks; i++) {
            const int rows = (M - m0) / (blocks - i) + ((M - m0) % (blocks - i) != 0);
            const float *x = X + (size_t)m0 * K;
            float *y = Y + (size_t)m0 * ldy + n0;
            m0 += rows;
            const char *pf = i == 0 ? next : NULL; /* the first pass over a panel fetches the next one */
            switch (rows) { /* a constant R and format in each case: fully unrolled code */
#define ROWS(R) case R: if (bf16) panel(Wp, 1, x, K, y, ldy, add, R, n, pf); else panel(Wp, 0, x, K, y, ldy, add, R, n, pf); break;
            ROWS(1)
#if MR >= 2
            ROWS(2)
#endif
#if MR >= 3
            ROWS(3)
#endif
#if MR >= 4
            ROWS(4)
#endif
#if MR >= 5
            ROWS(5)
#endif
#if MR >= 6
            ROWS(6)
#endif
#if MR >= 7
            ROWS(7)
#endif
#if MR >= 8
            ROWS(8)
#endif
#if MR >= 9
            ROWS(9)
#endif
#if MR >= 10
            ROWS(10)
#endif
#if MR >= 11
            ROWS(11)
#endif
#if MR >= 12
            ROWS(12)
#endif
#if MR >= 13
            ROWS(13)
#endif
#if MR >= 14
            ROWS(14)
#endif
#if MR >= 15
            ROWS(15)
#endif
#if MR >= 16
            ROWS(16)
#endif
#undef ROWS
            }
        }
    }
}

/* out = x * rsqrt(mean(x^2) + eps) * w, as F.rms_norm */
static void rms_norm(const float *x, const float *w, float *out, int n, float eps) {
    float r = 1.0f / sqrtf(dot(x, x, n) / (float)n + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}

/* apply_rope on one head: halves (x1, x2) -> (x1 cos - x2 sin, x1 sin + x2 cos) */
static void rope(float *x, const float *cos, const float *sin, int hd) {
    int h = hd / 2;
    for (int i = 0; i < h; i++) {
        float a = x[i], b = x[i + h];
        x[i] = a * cos[i] - b * sin[i];
        x[i + h] = a * sin[i] + b * cos[i];
    }
}

/* p[t] = exp(p[t] - mx) for t < n, VL at a time -> their sum */
static float softmax_exp(float *p, int n, float mx) {
    int t = 0;
    for (; t + VL <= n; t += VL) *(vfu *)(p + t) = exp_negv(load(p + t) - mx);
    for (; t < n; t++) p[t] = exp_neg(p[t] - mx);
    return sum(p, n);
}

/* Attention of one head of one row where hd is NC * 2 VL: o = softmax(q . K[t] * scale over t < n) . V, with
 * K, V the head's (n, hd) keys and values in the pool (float32, or bfloat16 where bf16), p room for n scores.
 * Each 2 VL values of a row are two vectors: in bfloat16 the even and the odd ones (a 32-bit word holds the
 * pair; a shift and a mask widen both, as load_w does), in float32 the two halves. q is split the same way,
 * and the output is put back in order at the end, so the sums are the same whatever the split. q lives in
 * registers while the scores are taken, then o while the values are summed. */
static inline __attribute__((always_inline)) void attend_vec(const float *q, const void *K, const void *V, int bf16,
                                                             int n, const int NC, float scale, float *p, float *o) {
    const int hd = NC * 2 * VL;
    vf qa[NC_MAX], qb[NC_MAX], oa[NC_MAX], ob[NC_MAX];
    for (int c = 0; c < NC; c++) {
        for (int l = 0; l < VL; l++) {
            qa[c][l] = bf16 ? q[c * 2 * VL + 2 * l] : q[c * 2 * VL + l];
            qb[c][l] = bf16 ? q[c * 2 * VL + 2 * l + 1] : q[c * 2 * VL + VL + l];
        }
        oa[c] = ob[c] = (vf){0};
    }
#define ROW(X, t, c, a, b)                                                                   \
    do {                                                                                     \
        if (bf16) {                                                                          \
            vw w_ = *(const vwu *)((const uint16_t *)(X) + (size_t)(t) * hd + (c) * 2 * VL); \
            a = (vf)(w_ << 16), b = (vf)(w_ & 0xffff0000u);                                  \
        } else {                                                                             \
            a = load((const float *)(X) + (size_t)(t) * hd + (c) * 2 * VL);                  \
            b = load((const float *)(X) + (size_t)(t) * hd + (c) * 2 * VL + VL);             \
        }                                                                                    \
    } while (0)
    float mx = -INFINITY;
    for (int t = 0; t < n; t++) {
        vf even = {0}, odd = {0};
        for (int c = 0; c < NC; c++) {
            vf a, b;
            ROW(K, t, c, a, b);
            even += qa[c] * a, odd += qb[c] * b;
        }
        p[t] = hsum(even + odd) * scale;
        mx = p[t] > mx ? p[t] : mx;
    }
    const float inv = 1.0f / softmax_exp(p, n, mx);
    for (int t = 0; t < n; t++)
        for (int c = 0; c < NC; c++) {
            vf a, b;
            ROW(V, t, c, a, b);
            oa[c] += p[t] * a, ob[c] += p[t] * b;
        }
#undef ROW
    for (int c = 0; c < NC; c++)
        for (int l = 0; l < VL; l++) {
            o[c * 2 * VL + (bf16 ? 2 * l : l)] = oa[c][l] * inv;
            o[c * 2 * VL + (bf16 ? 2 * l + 1 : VL + l)] = ob[c][l] * inv;
        }
}

/* The same for any hd, plain loops. */
static void attend_any(const float *q, const void *K, const void *V, int bf16, int n, int hd, float scale, float *p,
                       float *o) {
    float mx = -INFINITY;
    for (int t = 0; t < n; t++) {
        float s = 0.0f;
        for (int i = 0; i < hd; i++) s += q[i] * kv_at(K, bf16, (size_t)t * hd + i);
        p[t] = s * scale;
        mx = p[t] > mx ? p[t] : mx;
    }
    const float inv = 1.0f / softmax_exp(p, n, mx);
    memset(o, 0, hd * sizeof(float));
    for (int t = 0; t < n; t++)
        for (int i = 0; i < hd; i++) o[i] += p[t] * kv_at(V, bf16, (size_t)t * hd + i);
    for (int i = 0; i < hd; i++) o[i] *= inv;
}

static void attend(const float *q, const void *K, const void *V, int bf16, int n, int hd, float scale, float *p,
                   float *o) {
    switch (hd) { /* a constant width in each case: the vectors stay in registers (heads of 2 VL to 16 VL) */
#define WIDTH(NC) case NC * 2 * VL: \
        if (bf16) attend_vec(q, K, V, 1, n, NC, scale, p, o); \
        else attend_vec(q, K, V, 0, n, NC, scale, p, o); \
        return;
    WIDTH(1) WIDTH(2) WIDTH(3) WIDTH(4) WIDTH(5) WIDTH(6) WIDTH(8)
#undef WIDTH
    default: attend_any(q, K, V, bf16, n, hd, scale, p, o);
    }
}

/* silu(g) * u for n values: sigmoid from exp of -|g|, VL lanes at a time */
static void swiglu(const float *g, const float *u, float *out, int n) {
    int i = 0;
    for (; i + VL <= n; i += VL) {
        vf x = load(g + i);
        const vi pos = x > 0.0f;
        vf e = exp_negv((vf)((vi)x | ((vi){0} + INT32_MIN))); /* -|x|: the sign bit set */
        vf num = (vf)(((vi)((vf){0} + 1.0f) & pos) | ((vi)e & ~pos));
        *(vfu *)(out + i) = x * (num / (1.0f + e)) * load(u + i);
    }
    for (; i < n; i++) {
        float x = g[i], e = exp_neg(x > 0 ? -x : x);
        out[i] = x * (x > 0 ? 1.0f / (1.0f + e) : e / (1.0f + e)) * u[i];
    }
}

/* B rows: row b feeds tokens[b] at positions[b] of KV pool slot slots[b], its key and value go into the pool,
 * and it attends to positions 0..positions[b] of its slot. A prompt is several rows of one slot in rising
 * positions (each row writes its key and value before the rows after it attend): prefills and decode steps
 * share one call. logits (n_out, V) for the rows out_rows[0..n_out). 0 on success, 1 when out of memory, 2 for
 * a position or a slot outside the pool, 3 for a token out of range, 4 for
 * an out_rows entry out of range or more of them than rows. */
int colossus_decode(const Model *m, int B, const int64_t *tokens, const int64_t *positions, const int64_t *slots,
                    int n_out, const int64_t *out_rows, float *logits) {
    const int C = m->C, H = m->H, Hkv = m->Hkv, hd = m->hd, F = m->F;
    const int nq = H * hd, nkv = 2 * Hkv * hd, nup = m->swiglu ? 2 * F : F;
    int L = 0;
    for (int b = 0; b < B; b++) {
        if (positions[b] < 0 || positions[b] >= m->max_len) return 2;
        if (slots[b] < 0 || slots[b] >= m->slots) return 2;
        if (tokens[b] < 0 || tokens[b] >= m->V) return 3;
        if (positions[b] + 1 > L) L = (int)positions[b] + 1;
    }
    if (n_out > B) return 4;
    for (int i = 0; i < n_out; i++)
        if (out_rows[i] < 0 || out_rows[i] >= B) return 4;
    const int nt = m->threads > 0 ? m->threads : 1;
    size_t floats = (size_t)B * (2 * C + nq + nkv + nq + nup + F) + (size_t)nt * L;
    float *buf = malloc(floats * sizeof(float));
    if (!buf) return 1;
    float *x = buf, *xn = x + (size_t)B * C, *q = xn + (size_t)B * C, *kv = q + (size_t)B * nq;
    float *att = kv + (size_t)B * nkv, *up = att + (size_t)B * nq, *act = up + (size_t)B * nup;
    float *p = act + (size_t)B * F;
    const int group = H / Hkv;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t head_stride = (size_t)m->max_len * hd, slot_stride = Hkv * head_stride;

    for (int b = 0; b < B; b++) memcpy(x + (size_t)b * C, m->embed + (size_t)tokens[b] * C, C * sizeof(float));
    const double t_call = m->prof ? now() : 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#ifdef _OPENMP
    const int tid = omp_get_thread_num();
#else
    const int tid = 0;
#endif
    float *pt = p + (size_t)tid * L; /* this thread's attention probabilities */
    const int timing = m->prof && tid == 0; /* thread 0 times the sections (each ends at a barrier) */
#define TIMED(i, call) do { const double t_ = timing ? now() : 0; call; if (timing) m->prof[i] += now() - t_; } while (0)
    for (int l = 0; l < m->n_layer; l++) {
        const Layer *w = &m->layers[l];
        const size_t layer_at = (size_t)l * m->slots * slot_stride; /* in elements of the pool */
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) rms_norm(x + (size_t)b * C, w->attn_norm, xn + (size_t)b * C, C, m->eps);
        TIMED(0, matmul(w->q, m->bf16, xn, q, B, nq, C, nq, 0));
        TIMED(0, matmul(w->kv, m->bf16, xn, kv, B, nkv, C, nkv, 0));
        /* every row's key and value go into the pool before any row attends: a prompt's rows see each other */
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            const int pos = (int)positions[b];
            const size_t slot = (size_t)slots[b];
            const float *cs = m->cos + (size_t)pos * (hd / 2), *sn = m->sin + (size_t)pos * (hd / 2);
            float *qb = q + (size_t)b * nq, *kb = kv + (size_t)b * nkv, *vb = kb + Hkv * hd;
            for (int h = 0; h < H; h++) {
                if (w->q_norm) rms_norm(qb + h * hd, w->q_norm, qb + h * hd, hd, m->eps);
                rope(qb + h * hd, cs, sn, hd);
            }
            for (int g = 0; g < Hkv; g++) {
                if (w->k_norm) rms_norm(kb + g * hd, w->k_norm, kb + g * hd, hd, m->eps);
                rope(kb + g * hd, cs, sn, hd);
                const size_t at = layer_at + slot * slot_stride + g * head_stride + (size_t)pos * hd;
                if (m->kv_bf16) {
                    for (int i = 0; i < hd; i++) {
                        ((uint16_t *)m->k_pool)[at + i] = to_bf16(kb[g * hd + i]);
                        ((uint16_t *)m->v_pool)[at + i] = to_bf16(vb[g * hd + i]);
                    }
                } else {
                    memcpy((float *)m->k_pool + at, kb + g * hd, hd * sizeof(float));
                    memcpy((float *)m->v_pool + at, vb + g * hd, hd * sizeof(float));
                }
            }
        }
        const double t_att = timing ? now() : 0;
#pragma omp for schedule(dynamic, 4)
        for (int bh = 0; bh < B * H; bh++) {
            const int b = bh / H, h = bh % H;
            const size_t at = layer_at + (size_t)slots[b] * slot_stride + (h / group) * head_stride;
            const size_t bytes = m->kv_bf16 ? 2 : 4;
            attend(q + (size_t)b * nq + h * hd, (const char *)m->k_pool + at * bytes,
                   (const char *)m->v_pool + at * bytes, m->kv_bf16, (int)positions[b] + 1, hd, scale, pt,
                   att + (size_t)b * nq + h * hd);
        }
        if (timing) m->prof[1] += now() - t_att;
        TIMED(0, matmul(w->proj, m->bf16, att, x, B, C, nq, C, 1));
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) rms_norm(x + (size_t)b * C, w->mlp_norm, xn + (size_t)b * C, C, m->eps);
        TIMED(0, matmul(w->up, m->bf16, xn, up, B, nup, C, nup, 0));
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            const float *u = up + (size_t)b * nup;
            float *a = act + (size_t)b * F;
            if (m->swiglu) /* gate, value = chunk(2): silu(gate) * value */
                swiglu(u, u + F, a, F);
            else
                for (int i = 0; i < F; i++) {
                    float r = u[i] > 0 ? u[i] : 0.0f;
                    a[i] = r * r;
                }
        }
        TIMED(0, matmul(w->down, m->bf16, act, x, B, C, F, C, 1));
    }
#pragma omp for schedule(static)
    for (int i = 0; i < n_out; i++) /* only the rows that want logits: a prompt's last */
        rms_norm(x + (size_t)out_rows[i] * C, m->final_norm, xn + (size_t)i * C, C, m->eps);
    TIMED(0, matmul(m->head, m->bf16, xn, logits, n_out, m->V, C, m->V, 0));
    }
#undef TIMED
    free(buf);
    if (m->prof) m->prof[2] += now() - t_call;
    return 0;
}
