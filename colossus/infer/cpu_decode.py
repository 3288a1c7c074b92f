"""The engine's forward step on CPU as one C call (colossus/infer/cpu_decode.c) instead of ~200 PyTorch ops.

    decoder = CpuDecoder.create(model, pool, weights="bfloat16")  # None where no C compiler is found
    logits = decoder.step(tokens=[5, 9], positions=[40, 17])       # (2, V); rows are pool slots 0 and 1
    # slot 0 decodes one token while slot 1 takes a 3-token prompt; logits of rows 0 and 3
    logits = decoder.step([5, 1, 2, 3], [41, 0, 1, 2], slots=[0, 1, 1, 1], out_rows=[0, 3])

At a few rows a small model's step is overhead and memory traffic, not arithmetic: PyTorch launches an op
for every norm, rotation and residual add, and streams 4-byte weights. The C step does the same network
in one call with the GIL released, the prompts of newly admitted requests in the same call as the decode
rows, and can read the matmul weights as bfloat16 (weights="bfloat16": half the bytes; products and sums
stay float32) and a KV pool of bfloat16 as well as float32 (SlotPool's kv_dtype). Its results equal
GPT.forward's within float rounding, and a row's result never depends on the other rows of the batch (the
same bits alone or batched).

`threads` OpenMP threads share one call's work (output panels, attention heads); a row's result is the
same bits whatever their number. The library is compiled once per source, compiler, flags and machine
(-O3 -march=native, and -fopenmp where the compiler has it) with the system's C compiler (`$CC`, else cc,
gcc or clang) into ~/.cache/colossus/kernels (or $COLOSSUS_CACHE/kernels) and loaded with ctypes: no build
step at install, and no dependency beyond a C compiler. Without one, `create` returns None and the
engine keeps GPT.decode_step.

The build is blocked for the vector unit it targets: vectors of its width and as many rows per pass over
a weight panel as its registers hold (AVX-512: 12 rows x 32 outputs; AVX2: 5 x 16; NEON: 5 x 16 of 4-wide
vectors; cpu_decode.c says why), read back from the library (Kernel) so that packing matches.
load_kernel(flags) builds with extra flags beside the default build, e.g. ("-mno-avx512f",) for the AVX2
code on an AVX-512 machine; $COLOSSUS_KERNEL_CFLAGS adds flags to the build the engine uses."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from colossus.infer.kv_pool import SlotPool
from colossus.model.gpt import GPT
from colossus.model.rope import rope_rows

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("cpu_decode.c")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}  # what the step reads its weights and KV pool as
_P = ctypes.c_void_p
_F = ctypes.POINTER(ctypes.c_float)


class _Layer(ctypes.Structure):
    _fields_ = [("q", _P), ("kv", _P), ("proj", _P), ("up", _P), ("down", _P), ("attn_norm", _F), ("mlp_norm", _F),
                ("q_norm", _F), ("k_norm", _F)]


class _Model(ctypes.Structure):
    _fields_ = [*((name, ctypes.c_int) for name in ("n_layer", "C", "H", "Hkv", "hd", "F", "V", "swiglu", "bf16",
                                                     "kv_bf16", "slots", "max_len", "threads")),
                ("eps", ctypes.c_float), ("embed", _F), ("final_norm", _F), ("head", _P), ("cos", _F), ("sin", _F),
                ("k_pool", _P), ("v_pool", _P), ("layers", ctypes.POINTER(_Layer)),
                ("prof", ctypes.POINTER(ctypes.c_double))]


_ERRORS = {1: "out of memory", 2: "a position or slot outside the KV pool", 3: "a token id out of range",
           4: "an output row out of range, or more output rows than rows"}
FLAGS_ENV = "COLOSSUS_KERNEL_CFLAGS"  # more compiler flags for the engine's build, e.g. -mno-avx512f
_lock = threading.Lock()
_kernels: dict[tuple[str, ...], Kernel | None] = {}  # by extra flags: built (or failed) once per process


@dataclass(frozen=True)
class Kernel:
    """A build of cpu_decode.c and the blocking it was compiled with, which packing must match."""

    lib: ctypes.CDLL
    path: Path
    flags: tuple[str, ...]  # the extra flags it was built with, beyond the defaults
    isa: str  # the vector instructions compiled for: AVX-512, AVX2, NEON, ...
    lanes: int  # floats per vector register
    registers: int  # vector registers
    rows: int  # rows of X per block of the matmul
    panel: int  # outputs per weight panel (and per block)
    march: str  # what -march=native stands for on this compiler ("znver3"), "" where it does not say

    def describe(self) -> str:
        target = f"-march=native = {self.march}" if self.march else "-march=native"
        extra = " " + " ".join(self.flags) if self.flags else ""
        return (f"{self.isa} ({self.registers} x {self.lanes * 32}-bit registers; {self.rows} rows x {self.panel} "
                f"outputs per matmul block), {target}{extra}")


def cache_dir() -> Path:
    root = os.environ.get("COLOSSUS_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "colossus") / "kernels"


def compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _flags(extra: tuple[str, ...]) -> list[str]:
    flags = ["-O3", "-shared", "-fPIC", "-std=gnu99", "-march=native", "-fopenmp"]
    return flags + list(extra)


def _compile(cc: str, out: Path, extra: tuple[str, ...]) -> None:
    flags = _flags(extra)
    for attempt in (flags, [f for f in flags if f != "-fopenmp"],
                    [f for f in flags if f not in ("-fopenmp", "-march=native")]):
        r = subprocess.run([cc, *attempt, str(SOURCE), "-o", str(out), "-lm"], capture_output=True, text=True)
        if r.returncode == 0:
            return
    raise OSError(f"{cc} failed: {r.stderr.strip()[-500:]}")


@functools.cache
def _march(cc: str) -> str:
    """What -march=native resolves to (gcc says; clang does not): the CPU the build is tuned for."""
    try:
        r = subprocess.run([cc, "-march=native", "-Q", "--help=target"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "-march=":
            return parts[1]
    return ""


def env_flags() -> tuple[str, ...]:
    """Extra compiler flags for the build the engine uses, from $COLOSSUS_KERNEL_CFLAGS."""
    return tuple(shlex.split(os.environ.get(FLAGS_ENV, "")))


def load_kernel(flags: tuple[str, ...] | None = None) -> Kernel | None:
    """The compiled step with these extra compiler flags (default: $COLOSSUS_KERNEL_CFLAGS), built on first use
    and cached; None (with a warning) when it cannot be built. flags=("-mno-avx512f",) builds the AVX2 code on
    an AVX-512 machine."""
    flags = env_flags() if flags is None else tuple(flags)
    with _lock:
        if flags in _kernels:
            return _kernels[flags]
        _kernels[flags] = kernel = _build(flags)
        return kernel


def _build(flags: tuple[str, ...]) -> Kernel | None:
    cc = compiler()
    if cc is None:
        log.warning("no C compiler found ($CC, cc, gcc, clang): decoding with PyTorch ops, which is slower")
        return None
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([SOURCE.read_text(), version, " ".join(_flags(flags)), platform.machine(),
                                    platform.node()]).encode()).hexdigest()[:16]
    path = cache_dir() / f"cpu_decode-{key}.so"
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            log.info("compiling the CPU decode step with %s %s -> %s", cc, " ".join(flags), path)
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                part = Path(tmp) / path.name
                _compile(cc, part, flags)
                os.replace(part, path)  # atomic: another process sees all of it or none
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        log.warning("the CPU decode step could not be built (%s): decoding with PyTorch ops, which is slower", e)
        return None
    lib.colossus_decode.argtypes = [ctypes.POINTER(_Model), ctypes.c_int, _P, _P, _P, ctypes.c_int, _P, _P]
    lib.colossus_decode.restype = ctypes.c_int
    lib.colossus_kernel_isa.restype = ctypes.c_char_p
    info = (ctypes.c_int * 5)()
    lib.colossus_kernel_info(info)
    lanes, registers, rows, _, panel = info
    return Kernel(lib, path, flags, lib.colossus_kernel_isa().decode(), lanes, registers, rows, panel, _march(cc))


def pack(w: torch.Tensor, dtype: torch.dtype, panel: int, lanes: int) -> torch.Tensor:
    """(out, in) weight -> panels of `panel` output rows, each (in, panel) contiguous, zero-padded at the end.
    In bfloat16 each 2 * lanes outputs of a panel row are stored as pairs (j, j + lanes), the order
    cpu_decode.c's load_w widens them in."""
    n, k = w.shape
    pad = -n % panel
    if pad:
        w = torch.cat((w, w.new_zeros(pad, k)))
    panels = w.view(-1, panel, k).transpose(1, 2).to(dtype)  # (panels, in, panel)
    if dtype == torch.bfloat16:
        panels = panels.reshape(-1, k, panel // (2 * lanes), 2, lanes).transpose(3, 4)
    return panels.contiguous()


def _ptr(t: torch.Tensor | None, kind=_P):
    return ctypes.cast(t.data_ptr(), kind) if t is not None else None


class CpuDecoder:
    """GPT.decode_step for a SlotPool on CPU, as one C call. Holds its own copies of the matmul weights (made at
    construction: a model changed afterwards needs a new decoder)."""

    def __init__(self, kernel: Kernel, model: GPT, pool: SlotPool, weights: str = "float32", threads: int = 1):
        if weights not in DTYPES:
            raise ValueError(f"weights must be one of {tuple(DTYPES)}, not {weights!r}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, not {threads}")
        if pool.k.dtype not in DTYPES.values() or not pool.k.is_contiguous() or pool.k.device.type != "cpu":
            raise ValueError("the C decode step needs a contiguous float32 or bfloat16 KV pool on CPU")
        cfg = model.cfg
        self.kernel, self.cfg, self.pool = kernel, cfg, pool
        wdt = DTYPES[weights]

        def mat(t: torch.Tensor) -> torch.Tensor:
            return pack(t.detach(), wdt, kernel.panel, kernel.lanes)

        def vec(t: torch.Tensor) -> torch.Tensor:
            return t.detach().float().contiguous()

        keep: list[torch.Tensor] = []  # every tensor a pointer below points into
        layers = (_Layer * cfg.n_layer)()
        for i, blk in enumerate(model.blocks):
            a = blk.attn
            ts = [mat(a.q.weight), mat(a.kv.weight), mat(a.proj.weight), mat(blk.mlp.up.weight),
                  mat(blk.mlp.down.weight), vec(blk.attn_norm.weight), vec(blk.mlp_norm.weight)]
            norms = [vec(a.q_norm.weight), vec(a.k_norm.weight)] if cfg.qk_norm else [None, None]
            keep += ts + [t for t in norms if t is not None]
            layers[i] = _Layer(*(_ptr(t) for t in ts[:5]), *(_ptr(t, _F) for t in ts[5:]),
                               *(_ptr(t, _F) for t in norms))
        head = model.output_weight()  # with a copy head its gates are more columns (GPT.copy_logits reads them)
        self.outputs = head.size(0)
        self.copy_logits = model.copy_logits
        embed, final, head = vec(model.embed.weight), vec(model.norm.weight), mat(head)
        cos, sin = rope_rows(cfg.head_dim, pool.max_len, cfg.rope_theta, cfg.rope_scaling)  # the step's values
        cos, sin = cos.contiguous(), sin.contiguous()  # every position the pool holds
        keep += [embed, final, head, cos, sin]
        self._keep, self._layers = keep, layers
        self.model = _Model(cfg.n_layer, cfg.d_model, cfg.n_head, cfg.n_kv_head, cfg.head_dim, cfg.mlp_hidden,
                            self.outputs, cfg.mlp == "swiglu", wdt == torch.bfloat16, pool.k.dtype == torch.bfloat16,
                            pool.slots, pool.max_len, threads, cfg.norm_eps, _ptr(embed, _F), _ptr(final, _F),
                            _ptr(head), _ptr(cos, _F), _ptr(sin, _F), _ptr(pool.k), _ptr(pool.v), layers, None)
        self._prof = (ctypes.c_double * 3)()
        head_macs = self.outputs * cfg.d_model  # multiply-adds a row: the blocks' matmuls, then the head
        self._macs = (sum(w.numel() for w in model.matmul_weights()) - head_macs, head_macs)

    def profile(self, on: bool = True) -> None:
        """Start (or stop) adding up where the step's time goes; timings() reads and clears the sums."""
        self.model.prof = ctypes.cast(self._prof, ctypes.POINTER(ctypes.c_double)) if on else None
        self.timings()

    def timings(self) -> dict[str, float]:
        """Seconds spent, since the last call, in the matmuls, in attention and in whole calls (while profiling:
        thread 0 reads the clock around each section; every section ends at a barrier of all threads)."""
        out = dict(zip(("matmul", "attention", "total"), self._prof, strict=True))
        for i in range(3):
            self._prof[i] = 0.0
        return out

    def matmul_flops(self, rows: int, out_rows: int | None = None) -> int:
        """Multiply-adds x 2 of the matmuls of a step of `rows` rows, `out_rows` (default: all) of them through
        the output head."""
        blocks, head = self._macs
        return 2 * (rows * blocks + (rows if out_rows is None else out_rows) * head)

    @staticmethod
    def unsupported(model: GPT) -> str | None:
        """Why the C step cannot run this model (it hands it to the PyTorch step), or None."""
        if model.cfg.qkv_bias:
            return "it has no biases on q, k and v (Qwen2)"
        if model.cfg.n_experts:
            return "it has dense MLPs only, not Mixture-of-Experts (Mixtral)"
        if model.cfg.sliding_window:
            return "it attends to every position, not a sliding window (Mistral)"
        return None

    @classmethod
    def create(cls, model: GPT, pool: SlotPool, weights: str = "float32", threads: int = 1,
               kernel: Kernel | None = None) -> CpuDecoder | None:
        """A decoder on `kernel` (default: load_kernel()'s build); None where no build can be made, or where the
        model has what the C step lacks (logged)."""
        reason = cls.unsupported(model)
        if reason is not None:
            log.warning("C decode step: not used for this model, %s; decoding with PyTorch", reason)
            return None
        kernel = kernel or load_kernel()
        return cls(kernel, model, pool, weights, threads) if kernel is not None else None

    @property
    def threads(self) -> int:
        return self.model.threads

    @threads.setter
    def threads(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"threads must be >= 1, not {n}")
        self.model.threads = n

    def step(self, tokens: list[int], positions: list[int], slots: list[int] | None = None,
             out_rows: list[int] | None = None, follow: list[tuple] | None = None) -> torch.Tensor:
        """Row i feeds tokens[i] at positions[i] of pool slot slots[i] (default: slot i) -> the logits of the
        rows in out_rows (default: all), (len(out_rows), V) float32. Rows of one slot go in rising positions.
        follow: the out rows' follow ids (copy_head.POINTERS each), which a model with a copy head needs."""
        B = len(tokens)
        if len(positions) != B or (slots is not None and len(slots) != B):
            raise ValueError("tokens, positions and slots must have one entry per row")
        if self.cfg.copy_head and max(tokens, default=0) >= self.cfg.vocab_size:  # the gates' columns are no tokens
            raise ValueError(f"token ids must be below the vocabulary's {self.cfg.vocab_size}")
        ints = torch.tensor([tokens, positions, list(range(B)) if slots is None else slots], dtype=torch.int64)
        rows = torch.arange(B) if out_rows is None else torch.tensor(out_rows, dtype=torch.int64)
        out = torch.empty(len(rows), self.outputs)
        rc = self.kernel.lib.colossus_decode(ctypes.byref(self.model), B, ints[0].data_ptr(), ints[1].data_ptr(),
                                      ints[2].data_ptr(), len(rows), rows.data_ptr(), out.data_ptr())
        if rc:
            raise RuntimeError(f"the C decode step failed: {_ERRORS.get(rc, rc)}")
        if self.cfg.copy_head:
            return self.copy_logits(out, None if follow is None else torch.tensor(follow))
        return out
