"""GGUF files in: tiny random models built with transformers, written by the test with gguf.GGUFWriter as
llama.cpp's converter lays them out (llama's q and k rows permuted), load through load_model with the logits
that transformers gives on the same weights rounded the same way: the mapping, the un-permutation and each
type's dequantization are all checked at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hf_tiny import tiny_hf

from colossus.errors import ColossusError
from colossus.model import load_model
from colossus.model.gguf_file import permute, unpermute

transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

SHAPE = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6, initializer_range=0.15)
FAMILIES = {
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM, dict(rope_theta=500000.0)),
    "llama-tied": (transformers.LlamaConfig, transformers.LlamaForCausalLM, dict(tie_word_embeddings=True)),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM, {}),
    "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM, dict(head_dim=32)),
    "llama-linear": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                     dict(rope_parameters={"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0})),
    "llama-llama3": (transformers.LlamaConfig, transformers.LlamaForCausalLM, dict(rope_parameters={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16, "rope_theta": 10000.0})),
    "mixtral": (transformers.MixtralConfig, transformers.MixtralForCausalLM, dict(num_local_experts=4,
                                                                                  num_experts_per_tok=2)),
}
GGUF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
              "self_attn.k_norm": "attn_k_norm", "input_layernorm": "attn_norm",
              "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down"}


def tiny(family: str):
    config_cls, model_cls, extra = FAMILIES[family]
    return tiny_hf(config_cls, model_cls, **SHAPE, **extra)


EXPERTS = {"mlp.gate.weight": "ffn_gate_inp.weight", "mlp.experts.down_proj": "ffn_down_exps.weight"}


def gguf_name(hf_name: str) -> str:
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    if hf_name == "lm_head.weight":
        return "output.weight"
    _, _, layer, rest = hf_name.split(".", 3)
    if rest in EXPERTS:
        return f"blk.{layer}.{EXPERTS[rest]}"
    module, _, kind = rest.rpartition(".")
    return f"blk.{layer}.{GGUF_NAMES[module]}.{kind}"


def write_gguf(hf, family: str, path, qtype: str) -> None:
    """The model as llama.cpp's converter writes it: norms and biases in F32, matrices in qtype; each matrix
    of the transformers model is replaced by its rounded value, so both sides compute the same weights."""
    arch = {"mixtral": "llama"}.get(family, family.split("-")[0])  # llama.cpp writes Mixtral as llama
    cfg = hf.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    if cfg.rope_parameters.get("rope_type") == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(cfg.rope_parameters["factor"])
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    if cfg.rope_parameters.get("rope_type") == "llama3":  # as the converter writes it: a factor per frequency
        plain = 1.0 / (cfg.rope_parameters["rope_theta"] ** (torch.arange(0, 16, 2).float() / 16))
        w.add_tensor("rope_freqs.weight", (plain / hf.model.rotary_emb.inv_freq).numpy().astype(np.float32))
    if getattr(cfg, "num_local_experts", None):
        w.add_expert_count(cfg.num_local_experts)
        w.add_expert_used_count(cfg.num_experts_per_tok)
    if getattr(cfg, "head_dim", None):
        w.add_key_length(cfg.head_dim)
        w.add_value_length(cfg.head_dim)
    kind = gguf.GGMLQuantizationType[qtype]
    with torch.no_grad():
        for name, p in hf.state_dict().items():
            if name == "lm_head.weight" and cfg.tie_word_embeddings:
                continue
            x = p.float().numpy()
            if p.dim() == 1:
                w.add_tensor(gguf_name(name), x.astype(np.float32))
                continue
            if name.endswith("experts.gate_up_proj"):  # llama.cpp stacks the experts' gates and ups apart
                gate, up = np.split(x, 2, axis=1)
                layer = name.split(".")[2]
                parts = {f"blk.{layer}.ffn_gate_exps.weight": gate, f"blk.{layer}.ffn_up_exps.weight": up}
                rounded = []
                for part, y in parts.items():
                    stored, raw = quantized(y, qtype, kind)
                    rounded.append(gguf.quants.dequantize(stored, kind).reshape(y.shape))
                    w.add_tensor(part, np.asarray(stored), raw_dtype=raw)
                p.copy_(torch.from_numpy(np.concatenate(rounded, axis=1)))
                continue
            stored, raw = quantized(x, qtype, kind)
            p.copy_(torch.from_numpy(gguf.quants.dequantize(stored, kind).reshape(x.shape)))
            t = torch.from_numpy(np.array(stored))
            if arch == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
                heads = cfg.num_attention_heads if "q_proj" in name else cfg.num_key_value_heads
                t = permute(t, heads)
            w.add_tensor(gguf_name(name), t.numpy(), raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantized(x: np.ndarray, qtype: str, kind):
    """(what the file stores, its raw_dtype for GGUFWriter: None where numpy's dtype says it)."""
    if qtype == "F32":
        return x, None
    if qtype == "F16":
        return x.astype(np.float16), None
    return gguf.quants.quantize(x, kind), kind


def test_unpermute_undoes_llama_cpps_permutation():
    w = torch.arange(8 * 3 * 5.0).reshape(8 * 3, 5)
    assert torch.equal(unpermute(permute(w, 3), 3), w)
    assert not torch.equal(permute(w, 3), w)


# every family in F32 and Q8_0; the other types on llama
CASES = [(f, q) for f in sorted(FAMILIES) for q in ("F32", "Q8_0")] + [("llama", q) for q in ("F16", "BF16", "Q4_0",
                                                                                          "Q4_1")]


@pytest.mark.parametrize("family, qtype", CASES)
def test_logits_match_transformers_on_the_same_rounded_weights(tmp_path, family, qtype):
    hf = tiny(family)
    path = tmp_path / "model.gguf"
    write_gguf(hf, family, path, qtype)
    model = load_model(path)
    ids = torch.randint(0, SHAPE["vocab_size"], (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(ids).logits
    torch.testing.assert_close(model(ids), want, atol=1e-4, rtol=0)


def test_an_unknown_architecture_is_refused_naming_it(tmp_path):
    w = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "falcon")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ColossusError, match="architecture 'falcon' is not supported"):
        load_model(tmp_path / "m.gguf")


def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(ColossusError, match="not a readable GGUF file"):
        load_model(tmp_path / "m.gguf")
