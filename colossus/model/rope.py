"""Rotary position embeddings: the frequencies of each head's pairs of dimensions, plain or scaled as the
checkpoints users bring ask (`ModelConfig.rope_scaling`), computed as transformers computes them.

    rope_tables(cfg, positions)   cos/sin for a forward over these positions (training, prefill)
    rope_rows(cfg, n)             cos/sin of positions 0..n-1 as a decode step at each one computes them

Scalings (`rope_scaling["rope_type"]`):
- "linear": every frequency divided by `factor` (positions interpolated);
- "llama3": long wavelengths divided by `factor`, short ones kept, a smooth ramp between (Llama 3.1, 3.2);
- "yarn": a ramp from interpolated to extrapolated frequencies over the dimensions, and cos/sin multiplied by
  an attention factor (so query-key products by its square);
- "dynamic": NTK-aware, the base grows with the sequence once it is longer than
  `original_max_position_embeddings`. It depends on the length: a forward over T tokens uses the base of T
  (each row its own), and a decode step at position p the base of p + 1, which is what transformers computes
  for one sequence, generated or not (its batched generation takes the batch's longest instead);
- "factors": each frequency divided by its own factor, as llama.cpp's rope_freqs tensor gives them (the
  converter's rendering of llama3 scaling in a GGUF file)."""

from __future__ import annotations

import math

import torch

from colossus.errors import ColossusError

# the keys each scaling reads (and may be given); rope_type is always there
KEYS = {
    "linear": {"factor"},
    "dynamic": {"factor", "original_max_position_embeddings"},
    "llama3": {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"},
    "yarn": {"factor", "original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow", "mscale",
             "mscale_all_dim", "truncate"},
    "factors": {"factors"},
}
REQUIRED = {"linear": {"factor"}, "dynamic": {"factor", "original_max_position_embeddings"},
            "llama3": KEYS["llama3"], "yarn": {"factor", "original_max_position_embeddings"}, "factors": {"factors"}}


def check_scaling(scaling: dict | None) -> None:
    """A ColossusError naming what is wrong with a rope_scaling dict (None: no scaling)."""
    if scaling is None:
        return
    kind = scaling.get("rope_type")
    if kind not in KEYS:
        raise ColossusError(f"rope_scaling: rope_type {kind!r} is not supported (supported: {', '.join(KEYS)})")
    unknown = sorted(set(scaling) - KEYS[kind] - {"rope_type"})
    if unknown:
        raise ColossusError(f"rope_scaling: {unknown[0]!r} is not a parameter of {kind!r} scaling")
    missing = sorted(REQUIRED[kind] - {k for k, v in scaling.items() if v is not None})
    if missing:
        raise ColossusError(f"rope_scaling: {kind!r} scaling needs {missing[0]!r}")


def _plain(head_dim: int, base: float | torch.Tensor) -> torch.Tensor:
    """base ** (-2i / d) for i < d / 2; base a float, or a tensor (..., 1) of one base per row."""
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def inv_freq(head_dim: int, theta: float, scaling: dict | None) -> tuple[torch.Tensor, float]:
    """(head_dim / 2,) inverse frequencies and the factor on cos/sin, for every scaling but "dynamic" (whose
    frequencies depend on the length: _dynamic_inv_freq)."""
    freq = _plain(head_dim, theta)
    kind = (scaling or {}).get("rope_type")
    if kind is None or kind == "dynamic":
        return freq, 1.0
    s = scaling
    if kind == "factors":
        factors = torch.tensor(s["factors"], dtype=torch.float32)
        if factors.shape != freq.shape:
            raise ColossusError(f"rope_scaling: {len(s['factors'])} factors for a head of {head_dim} (one per pair)")
        return freq / factors, 1.0
    factor = float(s["factor"])
    if kind == "linear":
        return freq / factor, 1.0
    if kind == "llama3":
        old = s["original_max_position_embeddings"]
        low, high = s["low_freq_factor"], s["high_freq_factor"]
        wavelen = 2 * math.pi / freq
        scaled = torch.where(wavelen > old / low, freq / factor, freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / high) * ~(wavelen > old / low)
        return torch.where(medium, smoothed, scaled), 1.0
    # yarn
    attention = s.get("attention_factor")
    if attention is None:
        mscale, mscale_all = s.get("mscale"), s.get("mscale_all_dim")
        attention = (_yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all) if mscale and mscale_all
                     else _yarn_mscale(factor))
    fast, slow = s.get("beta_fast") or 32, s.get("beta_slow") or 1
    old = s["original_max_position_embeddings"]

    def correction_dim(rotations: float) -> float:
        return head_dim * math.log(old / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    lo, hi = correction_dim(fast), correction_dim(slow)
    if s.get("truncate", True):
        lo, hi = math.floor(lo), math.ceil(hi)
    lo, hi = max(lo, 0), min(hi, head_dim - 1)
    if lo == hi:
        hi += 0.001
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float32) - lo) / (hi - lo)).clamp(0, 1)
    extrapolate = 1 - ramp  # the share of each dimension kept at its trained frequency
    return freq / factor * (1 - extrapolate) + freq * extrapolate, float(attention)


def _dynamic_inv_freq(head_dim: int, theta: float, scaling: dict, seq_len: torch.Tensor) -> torch.Tensor:
    """(*seq_len.shape, head_dim / 2): NTK-aware frequencies for sequences of these lengths."""
    old, factor = scaling["original_max_position_embeddings"], float(scaling["factor"])
    n = seq_len.clamp(min=old).double()
    base = theta * ((factor * n / old) - (factor - 1)) ** (head_dim / (head_dim - 2))
    return _plain(head_dim, base.float()[..., None])


def rope_tables(head_dim: int, positions: torch.Tensor, theta: float,
                scaling: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (*positions.shape, head_dim / 2) for a forward over these integer positions (the last
    dim being the sequence)."""
    if (scaling or {}).get("rope_type") == "dynamic":
        seq_len = positions.amax(-1) + 1
        freq = _dynamic_inv_freq(head_dim, theta, scaling, seq_len.cpu()).unsqueeze(-2)  # one set per sequence
        angles = positions.float()[..., None] * freq.to(positions.device)
        return angles.cos(), angles.sin()
    freq, attention = inv_freq(head_dim, theta, scaling)
    angles = positions.float()[..., None] * freq.to(positions.device)
    return angles.cos() * attention, angles.sin() * attention


def rope_rows(head_dim: int, n: int, theta: float, scaling: dict | None = None,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(n, head_dim / 2) cos/sin of positions 0..n-1, row p as a decode step at position p computes it (the
    same as a forward's but for "dynamic" scaling, where a step at p uses the base of p + 1)."""
    positions = torch.arange(n, device=device)
    if (scaling or {}).get("rope_type") == "dynamic":  # each position a sequence of its own
        cos, sin = rope_tables(head_dim, positions[:, None], theta, scaling)
        return cos[:, 0], sin[:, 0]
    return rope_tables(head_dim, positions, theta, scaling)
