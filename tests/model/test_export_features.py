"""Export of what the imported families add: Mixtral's experts, Mistral's (and Qwen's) sliding window and the RoPE
scalings. Each Hugging Face export loads in transformers with our logits within 1e-4 and reads back into the same
shape; GGUF exports of experts and of linear and per-frequency RoPE read back with our logits; what a format
cannot hold is refused in one line, never dropped."""

from __future__ import annotations

import pytest
import torch
from export_tiny import tiny_ours

from colossus.errors import ColossusError
from colossus.model import load_model
from colossus.model.export_gguf import export_gguf
from colossus.model.export_hf import export_hf

transformers = pytest.importorskip("transformers")
SWIGLU = dict(mlp="swiglu", qk_norm=False)
HF_CASES = {
    "mixtral": ({**SWIGLU, "n_experts": 4, "experts_per_token": 2}, "mixtral"),
    "mixtral-window": ({**SWIGLU, "n_experts": 4, "sliding_window": 6}, "mixtral"),
    "mistral": ({**SWIGLU, "sliding_window": 6}, "mistral"),
    "qwen3-window": ({"mlp": "swiglu", "qk_norm": True, "sliding_window": 6}, "qwen3"),
    "llama-llama3": ({**SWIGLU, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 16}},
                     "llama"),
    "llama-dynamic": ({**SWIGLU, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0,
                                                   "original_max_position_embeddings": 32}}, "llama"),
    "qwen2-yarn": ({**SWIGLU, "qkv_bias": True, "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                                                  "original_max_position_embeddings": 16}}, "qwen2"),
}


@pytest.mark.parametrize("case", sorted(HF_CASES))
def test_hugging_face_export_of_each_feature_loads_in_transformers_with_our_logits(tmp_path, tok, case):
    config, family = HF_CASES[case]
    ours = tiny_ours(tok, tmp_path / "m", **config)
    out = export_hf(tmp_path / "m", tmp_path / "hf")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    assert theirs.config.model_type == family
    ids = torch.randint(0, tok.vocab_size, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = ours(ids)
        torch.testing.assert_close(theirs(ids).logits, want, atol=1e-4, rtol=0)
        back = load_model(out)
        same = ("n_experts", "experts_per_token", "sliding_window", "rope_scaling", "rope_theta", "seq_len",
                "mlp_hidden", "head_dim", "qk_norm", "qkv_bias", "tie_embeddings")
        assert {k: getattr(back.cfg, k) for k in same} == {k: getattr(ours.cfg, k) for k in same}
        torch.testing.assert_close(back(ids), want, atol=1e-4, rtol=0)


GGUF_CASES = {
    "experts": {**SWIGLU, "n_experts": 4},
    "linear": {**SWIGLU, "rope_scaling": {"rope_type": "linear", "factor": 4.0}},
    "factors": {**SWIGLU, "rope_scaling": {"rope_type": "factors", "factors": [1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0,
                                                                               8.0]}},
}


@pytest.mark.parametrize("case", sorted(GGUF_CASES))
def test_gguf_export_of_experts_and_rope_scaling_reads_back_with_our_logits(tmp_path, tok, case):
    ours = tiny_ours(tok, tmp_path / "m", **GGUF_CASES[case])
    back = load_model(export_gguf(tmp_path / "m", tmp_path / "m.gguf", "f32"))
    assert back.cfg.n_experts == ours.cfg.n_experts and back.cfg.rope_scaling == ours.cfg.rope_scaling
    ids = torch.randint(0, tok.vocab_size, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(back(ids), ours(ids), atol=1e-4, rtol=0)


@pytest.mark.parametrize("fmt, config, message", [
    ("hf", {**SWIGLU, "rope_scaling": {"rope_type": "factors", "factors": [1.0] * 8}}, "has no transformers form"),
    ("gguf", {**SWIGLU, "sliding_window": 6}, "attend to every position"),
    ("gguf", {**SWIGLU, "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                          "original_max_position_embeddings": 16}}, "rope_scaling 'yarn'"),
    ("hf", {"mlp": "relu2", "qk_norm": False, "sliding_window": 6}, "no transformers family has both"),
])
def test_what_a_format_cannot_hold_is_refused_in_one_line(tmp_path, tok, fmt, config, message):
    tiny_ours(tok, tmp_path / "m", **config)
    with pytest.raises(ColossusError, match=message) as e:
        (export_hf if fmt == "hf" else export_gguf)(tmp_path / "m", tmp_path / "out")
    assert "\n" not in str(e.value)
