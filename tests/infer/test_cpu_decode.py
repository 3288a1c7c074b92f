"""The C forward step (colossus/infer/cpu_decode.c): the same network as GPT.forward, prefills and decode
rows in one call, float32 or bfloat16 weights, results that do not depend on the batch, clear errors, and
a fallback to PyTorch ops where no C compiler is found."""

from __future__ import annotations

import copy
import itertools
import platform
from pathlib import Path

import pytest
import torch

from colossus.errors import ColossusError
from colossus.infer import cpu_decode
from colossus.infer.cpu_decode import CpuDecoder, Kernel, load_kernel, pack
from colossus.infer.engine import Engine
from colossus.infer.kv_pool import DecodeView, SlotPool
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT

SHAPES = {
    "swiglu-gqa-qknorm": ModelConfig(vocab_size=300, seq_len=64, n_layer=2, d_model=64, n_head=4, n_kv_head=2,
                                     mlp="swiglu"),
    "relu2-mha-plain": ModelConfig(vocab_size=300, seq_len=64, n_layer=3, d_model=48, n_head=3, n_kv_head=3,
                                   qk_norm=False),  # widths that are not multiples of the 16-wide vectors
    # heads 64 wide: attention's vector path (heads of 32 to 128), as the served models' heads
    "swiglu-gqa-wide-heads": ModelConfig(vocab_size=300, seq_len=64, n_layer=2, d_model=128, n_head=2, n_kv_head=1,
                                         mlp="swiglu"),
}

needs_c = pytest.mark.skipif(load_kernel() is None, reason="no C compiler on this machine")

X86 = platform.machine().lower() in ("x86_64", "amd64")
# The builds every test below runs on: the machine's, and on x86 the AVX2 code (AVX-512 turned off) and 128-bit
# vectors with NEON's blocking (5 x 4 of 4-wide vectors), so that an AVX-512 host still checks the code an AVX2
# or ARM machine runs.
BUILDS = {"native": (), "avx2": ("-mno-avx512f",), "128-bit, 5 x 4": ("-mno-avx", "-DMR=5", "-DNV=4")}


@pytest.fixture(params=list(BUILDS))
def kernel(request) -> Kernel:
    if request.param != "native" and not X86:
        pytest.skip("the x86 builds without AVX-512 or AVX need an x86 compiler")
    k = load_kernel(BUILDS[request.param])
    if k is None:
        pytest.skip("no C compiler on this machine")
    return k


def random_model(cfg: ModelConfig, weights: str = "float32") -> GPT:
    """Spread-out random weights (the default init zeroes the residual projections); for bfloat16, matmul
    weights rounded as the engine rounds them."""
    torch.manual_seed(0)
    m = GPT(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    if weights == "bfloat16":
        m.round_matmul_weights(torch.bfloat16)
    return m


@pytest.mark.parametrize("weights", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_prefill_and_decode_rows_in_one_call_match_the_full_forward(shape, weights, kernel):
    cfg = SHAPES[shape]
    model = random_model(cfg, weights)
    seqs = [torch.randint(0, cfg.vocab_size, (n,)).tolist() for n in (11, 5, 17)]
    pool = SlotPool(cfg, 4, cfg.seq_len)
    dec = CpuDecoder.create(model, pool, weights, kernel=kernel)
    with torch.no_grad():
        full = [model(torch.tensor([s]))[0] for s in seqs]  # (T, V) each
    scale = max(f.abs().max().item() for f in full)
    # slot 0's first 8 tokens as a prompt alone
    got0 = dec.step(seqs[0][:8], list(range(8)), [0] * 8)
    assert torch.allclose(got0, full[0][:8], atol=1e-5 * scale, rtol=0)
    # then slot 0 decodes its 9th token while slots 1 and 2 take whole prompts; logits of three rows only
    tokens = [seqs[0][8], *seqs[1], *seqs[2]]
    positions = [8, *range(5), *range(17)]
    slots = [0] + [1] * 5 + [2] * 17
    out = dec.step(tokens, positions, slots, out_rows=[0, 5, 22])
    assert out.shape == (3, cfg.vocab_size)
    for got, want in zip(out, [full[0][8], full[1][4], full[2][16]], strict=True):
        assert torch.allclose(got, want, atol=1e-5 * scale, rtol=0)
    # the rest of slot 0, one token a step, from the keys and values the calls above left in the pool
    for t in range(9, 11):
        assert torch.allclose(dec.step([seqs[0][t]], [t], [0])[0], full[0][t], atol=1e-5 * scale, rtol=0)


class ReadOnlyView(DecodeView):
    """A decode view that attends to the pool as it is, writing nothing into it."""

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        kl, vl = self.pool.k[layer], self.pool.v[layer]
        return kl[:self.B, :, :self.L].to(k.dtype), vl[:self.B, :, :self.L].to(v.dtype), self.mask


@pytest.mark.parametrize("shape", ["swiglu-gqa-qknorm", "swiglu-gqa-wide-heads"])
@pytest.mark.parametrize("weights,kv", [("float32", torch.float32), ("bfloat16", torch.float32),
                                        ("float32", torch.bfloat16)])
def test_the_c_step_matches_gpt_decode_step_on_the_same_pool(weights, kv, shape, kernel):
    cfg = SHAPES[shape]
    model = random_model(cfg, weights)
    torch_pool, c_pool = (SlotPool(cfg, 4, cfg.seq_len, kv_dtype=kv) for _ in range(2))
    torch_pool.k.normal_(), torch_pool.v.normal_()
    c_pool.k.copy_(torch_pool.k), c_pool.v.copy_(torch_pool.v)
    tokens, positions = [3, 30, 7, 250], [20, 4, 33, 9]
    with torch.inference_mode():
        view = torch_pool.decode_view(positions)
        want = model.decode_step(torch.tensor(tokens), view.positions, view)
    got = CpuDecoder.create(model, c_pool, weights, kernel=kernel).step(tokens, positions)
    if kv == torch.float32:
        assert torch.allclose(got, want, atol=1e-5 * want.abs().max().item(), rtol=0)
        assert torch.allclose(c_pool.k, torch_pool.k, atol=1e-5) and torch.allclose(c_pool.v, torch_pool.v, atol=1e-5)
        return
    # bfloat16: the new keys and values rounded as PyTorch rounds (to nearest even). Their float32 values
    # differ in the last bits, which may tip a rare one to the next bfloat16 (more often in a build without
    # fused multiply-adds); truncating would tip half. The logits are those of attending to what the pool
    # holds: PyTorch's ops reading the keys and values as the C step stored them.
    read = SlotPool(cfg, 4, cfg.seq_len, kv_dtype=kv)
    read.k.copy_(c_pool.k), read.v.copy_(c_pool.v)
    with torch.inference_mode():
        view = ReadOnlyView(read, positions)
        as_stored = model.decode_step(torch.tensor(tokens), view.positions, view)
    assert torch.allclose(got, as_stored, atol=1e-5 * as_stored.abs().max().item(), rtol=0)
    written = len(tokens) * cfg.n_layer * cfg.n_kv_head * cfg.head_dim
    for c, t in ((c_pool.k, torch_pool.k), (c_pool.v, torch_pool.v)):
        assert c.dtype == torch.bfloat16
        assert torch.allclose(c.float(), t.float(), atol=0, rtol=2**-7)
        assert (c != t).sum() <= 0.02 * written


@needs_c
@pytest.mark.parametrize("kv", [torch.float32, torch.bfloat16])
def test_prompts_and_decode_rows_read_a_bfloat16_pool_as_the_torch_ops_do(kv):
    """Prefill rows write their keys and values before later rows of the prompt attend to them, in either type."""
    cfg = ModelConfig(  # heads 12 wide: not a whole 16-wide vector (SHAPES' heads are 16)
        vocab_size=300, seq_len=64, n_layer=2, d_model=48, n_head=4, n_kv_head=2, qk_norm=False)
    model = random_model(cfg)
    seq = torch.randint(0, cfg.vocab_size, (13,)).tolist()
    torch_pool, c_pool = (SlotPool(cfg, 2, cfg.seq_len, kv_dtype=kv) for _ in range(2))
    with torch.inference_mode():
        want = model(torch.tensor([seq[:12]]), cache=torch_pool.prefill_view(1, 0, 12),
                     positions=torch.arange(12))[0, -1]
        view = torch_pool.decode_view([0, 12])
        step = model.decode_step(torch.tensor([seq[0], seq[12]]), view.positions, view)[1]
    dec = CpuDecoder.create(model, c_pool)
    got = dec.step(seq[:12], list(range(12)), [1] * 12, out_rows=[11])[0]
    got_step = dec.step([seq[0], seq[12]], [0, 12], [0, 1])[1]
    for g, w in ((got, want), (got_step, step)):
        assert torch.allclose(g, w, atol=1e-4 * w.abs().max().item(), rtol=0)


@pytest.mark.parametrize("weights", ["float32", "bfloat16"])
def test_a_rows_logits_are_the_same_bits_alone_or_in_any_batch(weights, kernel):
    cfg = SHAPES["swiglu-gqa-qknorm"]
    model = random_model(cfg, weights)
    pool = SlotPool(cfg, 40, cfg.seq_len)
    pool.k.normal_(), pool.v.normal_()
    dec = CpuDecoder.create(model, pool, weights, kernel=kernel)
    alone = dec.step([42], [30], [39])
    # 1 + others rows: blocks of every size up to the kernel's rows, and batches split into several blocks
    for others in sorted({1, 3, kernel.rows - 1, kernel.rows, kernel.rows + 1, 2 * kernel.rows + 3, 39}):
        slots = [39, *range(others)]
        batched = dec.step([42, *range(100, 100 + others)], [30, *(10 + i % 40 for i in range(others))], slots)
        assert torch.equal(batched[0], alone[0])


def test_more_threads_give_the_same_bits(kernel):
    cfg = SHAPES["relu2-mha-plain"]
    model = random_model(cfg)
    outs = []
    for threads in (1, 2, 3):
        pool = SlotPool(cfg, 4, cfg.seq_len)
        dec = CpuDecoder.create(model, pool, threads=threads, kernel=kernel)
        assert dec.threads == threads
        prompt = dec.step(list(range(7, 20)), list(range(13)), [2] * 13, out_rows=[12])
        outs.append((prompt, dec.step([5, 6, 7], [13, 0, 0], [2, 0, 1]), pool.k.clone()))
    for other in outs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(outs[0], other, strict=True))
    with pytest.raises(ValueError, match="threads"):
        dec.threads = 0


@needs_c
def test_bad_rows_are_refused_with_a_reason_and_nothing_written():
    cfg = SHAPES["relu2-mha-plain"]
    pool = SlotPool(cfg, 2, cfg.seq_len)
    dec = CpuDecoder.create(random_model(cfg), pool)
    for tokens, positions, slots, reason in (([1], [cfg.seq_len], [0], "position or slot"),
                                             ([1], [0], [2], "position or slot"),
                                             ([cfg.vocab_size], [0], [0], "token id"),
                                             ([-1], [0], [0], "token id")):
        with pytest.raises(RuntimeError, match=reason):
            dec.step(tokens, positions, slots)
    for out_rows in ([1], [0, 0]):
        with pytest.raises(RuntimeError, match="output row"):
            dec.step([1], [0], [0], out_rows=out_rows)
    with pytest.raises(ValueError, match="one entry per row"):
        dec.step([1, 2], [0], [0])
    assert not pool.k.any() and not pool.v.any()


@pytest.mark.parametrize("panel,lanes", [(64, 16), (32, 16), (16, 8), (16, 4)])
def test_packed_panels_hold_every_weight_once_in_the_documented_order(panel, lanes):
    w = torch.arange(100 * 3, dtype=torch.float32).view(100, 3)
    n = -(-100 // panel)  # whole panels and a padded last one
    p32 = pack(w, torch.float32, panel, lanes)
    assert p32.shape == (n, 3, panel)
    last = 100 - (n - 1) * panel
    assert torch.equal(p32[-1, :, :last], w[(n - 1) * panel:].t()) and not p32[-1, :, last:].any()
    # bfloat16: pairs (j, j + lanes) in each 2 * lanes outputs
    p16 = pack(w, torch.bfloat16, panel, lanes).view(n, 3, panel // (2 * lanes), lanes, 2)
    assert torch.equal(p16[0, :, 0, :, 0].float(), w[0:lanes].t().bfloat16().float())
    assert torch.equal(p16[0, :, 0, :, 1].float(), w[lanes:2 * lanes].t().bfloat16().float())


@pytest.mark.skipif(not X86, reason="AVX2 and AVX-512 are x86")
def test_each_build_runs_the_vector_code_it_was_asked_for():
    """The AVX2 build is 256-bit code with 16 registers, on any x86 host (an AVX-512 one included); the native
    build's is what the CPU has."""
    native, avx2, narrow = (load_kernel(f) for f in BUILDS.values())
    if native is None:
        pytest.skip("no C compiler on this machine")
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx512f" in flags:
        assert (native.isa, native.lanes, native.registers) == ("AVX-512", 16, 32)
    assert (avx2.isa, avx2.lanes, avx2.registers, avx2.panel) == ("AVX2", 8, 16, 16) and avx2.flags == BUILDS["avx2"]
    assert (narrow.lanes, narrow.rows, narrow.panel) == (4, 5, 16)
    assert len({native.path, avx2.path, narrow.path}) == 3  # three libraries side by side in the cache
    assert "AVX2 (16 x 256-bit registers" in avx2.describe()


def test_without_a_compiler_the_engine_falls_back_to_torch_ops(monkeypatch, tok):
    monkeypatch.setattr(cpu_decode, "compiler", lambda: None)
    monkeypatch.setattr(cpu_decode, "_kernels", {})
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, seq_len=32, n_layer=1, d_model=32, n_head=2, n_kv_head=2))
    assert cpu_decode.load_kernel() is None
    assert Engine(model, tok, max_batch=2).kernel == "torch"
    with pytest.raises(ColossusError, match="C compiler"):
        Engine(model, tok, max_batch=2, kernel="c")


def test_a_broken_compiler_is_a_warning_not_a_failure(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("COLOSSUS_CACHE", str(tmp_path))
    monkeypatch.setattr(cpu_decode, "compiler", lambda: "/bin/false")
    monkeypatch.setattr(cpu_decode, "_kernels", {})
    assert cpu_decode.load_kernel() is None
    assert "could not be built" in caplog.text
    assert not list(tmp_path.rglob("*.so"))


def test_bfloat16_weights_round_the_model_so_that_every_path_agrees(tok):
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, seq_len=32, n_layer=1, d_model=32, n_head=2, n_kv_head=2))
    kept = copy.deepcopy(model)
    engine = Engine(model, tok, max_batch=2, weights="bfloat16", kernel="torch")
    assert engine.pool.k.dtype == torch.bfloat16  # the KV cache follows the weights unless told otherwise
    for w, w0 in zip(model.matmul_weights(), kept.matmul_weights(), strict=True):
        assert torch.equal(w, w0.to(torch.bfloat16).float()) and w.dtype == torch.float32
    assert torch.equal(model.embed.weight, kept.embed.weight)  # a lookup, not a matmul: kept as it was
    with pytest.raises(ColossusError, match="weights must be one of"):
        Engine(model, tok, max_batch=2, weights="int4")


@pytest.mark.parametrize("weights", ["float32", "bfloat16"])
def test_each_build_generates_the_tokens_of_the_pytorch_model(weights, kernel, small):
    """Greedy replies to three prompts, decoded together (their prompts in one call, then one row each a step)
    on each build, are token for token those of GPT.forward over the whole sequence."""
    model = copy.deepcopy(small)
    if weights == "bfloat16":
        model.round_matmul_weights(torch.bfloat16)
    prompts = [[5, 17, 3, 9, 60, 2, 44], [1, 2, 3], [90, 8, 8, 12, 33, 41, 7, 70, 15, 6, 26]]
    want = []
    with torch.no_grad():
        for p in prompts:
            seq = list(p)
            for _ in range(24):
                seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
            want.append(seq[len(p):])
    dec = CpuDecoder.create(model, SlotPool(model.cfg, 3, model.cfg.seq_len), weights, kernel=kernel)
    tokens = [t for p in prompts for t in p]
    slots = [i for i, p in enumerate(prompts) for _ in p]
    positions = [j for p in prompts for j in range(len(p))]
    ends = list(itertools.accumulate(len(p) for p in prompts))
    got = [[t] for t in dec.step(tokens, positions, slots, [e - 1 for e in ends]).argmax(-1).tolist()]
    for _ in range(23):
        nxt = dec.step([g[-1] for g in got], [len(p) + len(g) - 1 for p, g in zip(prompts, got, strict=True)])
        for g, t in zip(got, nxt.argmax(-1).tolist(), strict=True):
            g.append(t)
    assert got == want
