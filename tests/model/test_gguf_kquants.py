"""K-quantized GGUF tensors (Q4_K, Q5_K, Q6_K: what most GGUF files on the Hub hold) read as ggml computes them.
The `gguf` package cannot write K-quants, so the test writes random blocks of each layout itself and checks the
loaded values against a reference dequantizer written here from ggml's dequantize_row_q{4,5,6}_K; a tiny Llama
whose every matrix is stored in Q4_K gives transformers' logits on the same values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hf_tiny import tiny_hf

from colossus.model import load_model
from colossus.model.gguf_file import GGUFFile, permute

transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

QK = 256  # values per super-block
BLOCK_BYTES = {"Q4_K": 144, "Q5_K": 176, "Q6_K": 210}


def scale_min(j: int, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ggml's get_scale_min_k4: sub-block j's 6-bit scale and min from the 12 packed bytes s (blocks, 12)."""
    s = s.astype(np.int32)
    if j < 4:
        return s[:, j] & 63, s[:, j + 4] & 63
    return (s[:, j + 4] & 0xF) | ((s[:, j - 4] >> 6) << 4), (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)


def f16(b: np.ndarray) -> np.ndarray:
    return b.copy().view(np.float16).astype(np.float32)[:, 0]


def reference(kind: str, raw: np.ndarray) -> np.ndarray:
    """(blocks, bytes) -> (blocks, 256) float32, as ggml's reference C code dequantizes."""
    y = np.zeros((raw.shape[0], QK), np.float32)
    if kind in ("Q4_K", "Q5_K"):
        d, dmin, scales = f16(raw[:, 0:2]), f16(raw[:, 2:4]), raw[:, 4:16]
        qh = raw[:, 16:48].astype(np.int32) if kind == "Q5_K" else None
        qs = raw[:, 48:176] if kind == "Q5_K" else raw[:, 16:144]
        for n, j in enumerate(range(0, QK, 64)):
            q = qs[:, n * 32:(n + 1) * 32].astype(np.int32)
            for half, (low, shift) in enumerate(((q & 0xF, 2 * n), (q >> 4, 2 * n + 1))):
                sc, m = scale_min(2 * n + half, scales)
                high = ((qh >> shift) & 1) * 16 if qh is not None else 0
                y[:, j + 32 * half:j + 32 * half + 32] = (d * sc)[:, None] * (low + high) - (dmin * m)[:, None]
        return y
    ql, qh, sc, d = (raw[:, 0:128].astype(np.int32), raw[:, 128:192].astype(np.int32),
                     raw[:, 192:208].view(np.int8).astype(np.float32), f16(raw[:, 208:210]))
    for n in range(2):  # two halves of 128
        a, h, s = ql[:, 64 * n:64 * n + 64], qh[:, 32 * n:32 * n + 32], sc[:, 8 * n:8 * n + 8]
        for l in range(32):
            i = l // 16
            qs = [(a[:, l] & 0xF) | (((h[:, l] >> 0) & 3) << 4), (a[:, l + 32] & 0xF) | (((h[:, l] >> 2) & 3) << 4),
                  (a[:, l] >> 4) | (((h[:, l] >> 4) & 3) << 4), (a[:, l + 32] >> 4) | (((h[:, l] >> 6) & 3) << 4)]
            for k, q in enumerate(qs):
                y[:, 128 * n + l + 32 * k] = d * s[:, i + 2 * k] * (q - 32)
    return y


def random_blocks(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n random blocks of the layout, with finite half-precision scales of a sane size."""
    raw = rng.integers(0, 256, (n, BLOCK_BYTES[kind]), dtype=np.uint8)
    for at in ((0, 2) if kind != "Q6_K" else (208,)):
        raw[:, at:at + 2] = (rng.uniform(0.002, 0.02, (n, 1))).astype(np.float16).view(np.uint8)
    return raw


def write(path, tensors: dict[str, tuple[np.ndarray, object]], arch: str = "llama", meta=None) -> None:
    w = gguf.GGUFWriter(str(path), arch)
    for key, value in (meta or {}).items():
        getattr(w, f"add_{key}")(value)
    for name, (data, raw) in tensors.items():
        w.add_tensor(name, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("kind", sorted(BLOCK_BYTES))
def test_k_quant_tensors_load_as_ggml_dequantizes_them(tmp_path, kind):
    rows, cols = 6, 2 * QK
    raw = random_blocks(kind, rows * cols // QK, np.random.default_rng(0))
    write(tmp_path / "t.gguf", {"w": (raw.reshape(rows, -1), gguf.GGMLQuantizationType[kind])})
    got = GGUFFile(tmp_path / "t.gguf").tensor("w")
    assert got.shape == (rows, cols)
    want = reference(kind, raw).reshape(rows, cols)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-6 * np.abs(want).max())
    assert np.abs(want).max() > 0 and np.unique(want).size > 100  # the blocks are not degenerate


def test_a_llama_stored_in_q4_k_matches_transformers_on_the_same_values(tmp_path):
    """Every matrix random Q4_K blocks: transformers gets the reference values, the file the blocks."""
    hf = tiny_hf(transformers.LlamaConfig, transformers.LlamaForCausalLM, vocab_size=256, hidden_size=256,
                 intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 max_position_embeddings=64, rms_norm_eps=1e-6)
    cfg, rng, kind = hf.config, np.random.default_rng(1), gguf.GGMLQuantizationType.Q4_K
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    parts = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    tensors = {}
    with torch.no_grad():
        for name, p in hf.state_dict().items():
            if name not in names:
                _, _, layer, rest = name.split(".", 3)
                names[name] = f"blk.{layer}.{parts[rest.removesuffix('.weight')]}.weight"
            if p.dim() == 1:
                tensors[names[name]] = (p.numpy().astype(np.float32), None)
                continue
            raw = random_blocks("Q4_K", p.numel() // QK, rng)
            values = torch.from_numpy(reference("Q4_K", raw).reshape(p.shape))
            p.copy_(values)
            if "q_proj" in name or "k_proj" in name:  # the file holds llama.cpp's row order: permute the values'
                heads = cfg.num_attention_heads if "q_proj" in name else cfg.num_key_value_heads
                order = permute(torch.arange(p.shape[0])[:, None].float(), heads)[:, 0].long()
                raw = raw.reshape(p.shape[0], -1)[order.numpy()]
            tensors[names[name]] = (raw.reshape(p.shape[0], -1), kind)
    write(tmp_path / "m.gguf", tensors, meta=dict(
        block_count=2, context_length=64, embedding_length=256, feed_forward_length=256, head_count=4,
        head_count_kv=2, rope_freq_base=cfg.rope_parameters["rope_theta"], layer_norm_rms_eps=1e-6, vocab_size=256))
    model = load_model(tmp_path / "m.gguf")
    ids = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = hf(ids).logits
    torch.testing.assert_close(model(ids), want, atol=1e-4, rtol=0)
