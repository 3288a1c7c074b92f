"""Hugging Face folders in: tiny random models of each family, built and saved by transformers inside the test,
give transformers' logits (float32, within 1e-4) and its greedy tokens through load_model, through the decode
step the engine runs, and through the serving engine."""

from __future__ import annotations

import asyncio
import json

import pytest
import torch
from hf_tiny import tiny_hf, with_tokenizer

from colossus.errors import ColossusError
from colossus.infer.engine import Engine
from colossus.infer.sampling import SamplingParams
from colossus.model import load_model

transformers = pytest.importorskip("transformers")

BASE = dict(vocab_size=512, hidden_size=64, intermediate_size=88, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6,
            initializer_range=0.15)  # large enough that the blocks, not the tied embedding, pick the next token
FAMILIES = {
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM, dict(rope_theta=500000.0)),
    "llama-tied": (transformers.LlamaConfig, transformers.LlamaForCausalLM, dict(tie_word_embeddings=True)),
    "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM, dict(sliding_window=None, rope_theta=1e6)),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM, dict(tie_word_embeddings=False)),
    "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM, dict(head_dim=24)),
    "mixtral": (transformers.MixtralConfig, transformers.MixtralForCausalLM, dict(
        num_local_experts=4, num_experts_per_tok=2, sliding_window=None)),
    "mistral-window": (transformers.MistralConfig, transformers.MistralForCausalLM, dict(sliding_window=8)),
    "qwen2-window": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM, dict(
        use_sliding_window=True, sliding_window=6, max_window_layers=0)),
    # RoPE scalings, trained on 16 or 24 positions so that the 40 tested go past it
    "llama-linear": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                     dict(rope_parameters={"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0})),
    "llama-llama3": (transformers.LlamaConfig, transformers.LlamaForCausalLM, dict(rope_parameters={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16, "rope_theta": 10000.0})),
    "llama-dynamic": (transformers.LlamaConfig, transformers.LlamaForCausalLM, dict(
        max_position_embeddings=24, rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0})),
    "qwen2-yarn": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM, dict(
        max_position_embeddings=64, rope_parameters={"rope_type": "yarn", "factor": 4.0,
                                                     "original_max_position_embeddings": 16, "rope_theta": 10000.0})),
}


def save_tiny(family: str, out, shard: bool = False):
    config_cls, model_cls, extra = FAMILIES[family]
    hf = tiny_hf(config_cls, model_cls, **{**BASE, **extra})
    hf.save_pretrained(out, max_shard_size="40KB" if shard else "5GB")
    return hf


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_logits_and_greedy_tokens_match_transformers(tmp_path, family, tok):
    hf = save_tiny(family, tmp_path, shard=family == "llama")
    if family == "llama":
        assert (tmp_path / "model.safetensors.index.json").exists()  # the sharded path is the one tested
    model = load_model(tmp_path)
    ids = torch.randint(0, BASE["vocab_size"], (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(ids).logits
    got = model(ids)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)

    prompt = ids[0, :12].tolist()
    hf.generation_config.eos_token_id = None  # 16 tokens, none suppressed (min_new_tokens would mask the eos id)
    with torch.no_grad():
        ref = hf.generate(torch.tensor([prompt]), max_new_tokens=16, do_sample=False,
                          pad_token_id=0)[0, len(prompt):].tolist()
    assert len(ref) == 16
    assert tok.vocab_size == BASE["vocab_size"]  # the engine detokenizes with it
    for kernel in ("torch", "auto"):  # qwen2's biases take the PyTorch step under "auto" (the C step has none)
        engine = Engine(model, tok, max_batch=2, kernel=kernel)
        engine.start()

        async def run(engine):
            params = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)
            return [t async for d in engine.generate(prompt, params) for t in d.token_ids]

        try:
            assert asyncio.run(run(engine)) == ref, kernel
        finally:
            engine.shutdown()


def test_bfloat16_checkpoint_loads_in_its_own_dtype_or_as_asked(tmp_path):
    config_cls, model_cls, extra = FAMILIES["qwen3"]
    torch.manual_seed(0)
    model_cls(config_cls(**BASE, **extra)).to(torch.bfloat16).save_pretrained(tmp_path)
    assert next(load_model(tmp_path).parameters()).dtype == torch.bfloat16
    assert next(load_model(tmp_path, dtype="float32").parameters()).dtype == torch.float32


@pytest.mark.parametrize("field, value, message", [
    ("model_type", "gpt2", "model_type 'gpt2' is not supported"),
    ("rope_scaling", {"rope_type": "longrope", "factor": 2.0}, "rope_type 'longrope' is not supported"),
    ("rope_scaling", {"rope_type": "linear", "factor": 2.0, "beta_fast": 3}, "'beta_fast' is not a parameter"),
    ("rope_scaling", {"rope_type": "llama3", "factor": 8.0}, "'llama3' scaling needs 'high_freq_factor'"),
    ("hidden_act", "gelu", "hidden_act = 'gelu' is not supported"),
    ("layer_types", ["full_attention", "sliding_attention"], "mixes full and sliding-window attention"),
    ("some_new_field", 3, "field 'some_new_field' is not supported"),
])
def test_unsupported_config_is_refused_with_one_line_naming_it(tmp_path, field, value, message):
    save_tiny("mistral", tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg[field] = value
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ColossusError, match=message) as e:
        load_model(tmp_path)
    assert "\n" not in str(e.value)


def test_a_tensor_the_model_does_not_use_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    save_tiny("llama", tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    state["model.layers.0.self_attn.o_proj.bias"] = torch.zeros(BASE["hidden_size"])
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ColossusError, match="o_proj.bias"):
        load_model(tmp_path)


def test_the_c_step_hands_a_model_with_qkv_biases_to_pytorch_saying_why(tmp_path, tok, caplog):
    save_tiny("qwen2", tmp_path)
    model = load_model(tmp_path)
    with caplog.at_level("WARNING"):
        assert Engine(model, tok, max_batch=2).kernel == "torch"
    assert "no biases on q, k and v" in caplog.text
    with pytest.raises(ColossusError, match="kernel 'c' cannot run this model: it has no biases"):
        Engine(model, tok, max_batch=2, kernel="c")


def hf_folder_with_tokenizer(tmp_path, tok):
    save_tiny("llama", tmp_path)
    return with_tokenizer(tmp_path, tok)


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Be brief. "}, {"role": "user", "content": "Hi  there"},
     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Digits 12.5, café?"}],
])
def test_a_folders_template_renders_as_transformers_does(tmp_path, tok, messages):
    from colossus.data.chat_template import render_prompt
    from colossus.model import load_chat_model

    folder = hf_folder_with_tokenizer(tmp_path, tok)
    _, ours = load_chat_model(folder)
    theirs = transformers.AutoTokenizer.from_pretrained(str(folder))
    want = theirs.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    want = want["input_ids"] if hasattr(want, "keys") else want
    assert render_prompt(ours, messages) == list(want)
    assert ours.stop_ids == {tok.end}


def test_colossus_chat_runs_on_a_hugging_face_folder(tmp_path, tok):
    import subprocess
    import sys

    folder = hf_folder_with_tokenizer(tmp_path / "m", tok)
    r = subprocess.run([sys.executable, "-m", "colossus.cli", "chat", "--model", str(folder), "--temperature", "0"],
                       input="Hello there\n/exit\n", capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "assistant>" in r.stdout and "Traceback" not in r.stderr


def test_a_sliding_window_holds_in_the_engines_batches_and_prefix_cache(tmp_path, tok):
    """Prompts of different lengths decoded side by side (masked rows), prefilled together, and one prompt again
    over its cached prefix: each gives transformers' greedy tokens with a window of 8."""
    hf = save_tiny("mistral-window", tmp_path)
    hf.generation_config.eos_token_id = None
    model = load_model(tmp_path)
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(0, BASE["vocab_size"], (n,), generator=g).tolist() for n in (5, 11, 19)]
    with torch.no_grad():
        want = [hf.generate(torch.tensor([p]), max_new_tokens=14, do_sample=False, pad_token_id=0)[0, len(p):]
                .tolist() for p in prompts]
    engine = Engine(model, tok, max_batch=4, kernel="torch")
    engine.start()

    async def run(prompt):
        params = SamplingParams(temperature=0, max_tokens=14, ignore_eos=True)
        return [t async for d in engine.generate(prompt, params) for t in d.token_ids]

    async def together():
        return await asyncio.gather(*(run(p) for p in prompts))

    try:
        assert asyncio.run(together()) == want
        assert asyncio.run(run(prompts[2])) == want[2]  # its prompt's prefix now comes from the cache
    finally:
        engine.shutdown()
