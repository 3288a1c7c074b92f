"""Our models out as GGUF files: read back with the `gguf` package's reader (the metadata llama.cpp reads) and with
our own loader (gguf_file.py, which tests/model/test_gguf_load.py checks against the layout of llama.cpp's own
converter: llama's q and k permuted, qwen's not). F32 gives our logits within 1e-4 and our greedy tokens; F16 and
Q8_0 give, within 1e-4, the logits of our model with its matrices rounded the same way (so the mapping is exact),
and our unrounded model's within the rounding's own error, stated below."""

from __future__ import annotations

import pytest
import torch
from export_tiny import CONVERSATIONS, TEXTS, greedy, rounded, tiny_ours

from colossus.data.chat_template import render_prompt
from colossus.errors import ColossusError
from colossus.model import load_chat_model, load_model
from colossus.model.export_gguf import export_gguf
from colossus.model.gguf_file import GGUFFile, tokenizer_from_gguf

gguf = pytest.importorskip("gguf")

CASES = {  # name: (our config, GGUF architecture)
    "llama": (dict(mlp="swiglu", qk_norm=False), "llama"),
    "llama-tied": (dict(mlp="swiglu", qk_norm=False, tie_embeddings=True), "llama"),
    "qwen2": (dict(mlp="swiglu", qk_norm=False, qkv_bias=True), "qwen2"),
    "qwen3": (dict(mlp="swiglu", qk_norm=True, head_size=24), "qwen3"),
}
# how far each type's rounding may move the logits of our unrounded model, over the logits' standard deviation:
# (largest, mean) difference. Measured on these models: F16 (11 bits) 0.5-1.2% largest, 0.1% mean; Q8_0 (8 bits a
# block of 32, weights within about 0.5%) 16-45% largest, 2-3% mean: random blocks amplify the rounding, so the
# exactness of the mapping is checked against the rounded model (1e-4), and this only bounds the rounding's size
ROUNDING_TOLERANCE = {"f16": (0.03, 0.002), "q8_0": (0.6, 0.05)}
DTYPES = [(c, "f32") for c in sorted(CASES)] + [(c, d) for c in ("llama", "qwen3") for d in ("f16", "q8_0")]


@pytest.fixture(scope="module")
def models(tmp_path_factory, tok):
    root = tmp_path_factory.mktemp("export-gguf")
    return {name: (tiny_ours(tok, root / name, **config), root / name) for name, (config, _) in CASES.items()}


@pytest.mark.parametrize("name, dtype", DTYPES)
def test_our_loader_reads_it_back_with_our_logits_and_greedy_tokens(models, tmp_path, name, dtype):
    ours, folder = models[name]
    path = export_gguf(folder, tmp_path / "m.gguf", dtype)
    back = load_model(path)
    ids = torch.randint(0, ours.cfg.vocab_size, (2, 40), generator=torch.Generator().manual_seed(1))
    want = ours if dtype == "f32" else rounded(ours, dtype)
    with torch.no_grad():
        torch.testing.assert_close(back(ids), want(ids), atol=1e-4, rtol=0)
        if dtype != "f32":
            diff, scale = (back(ids) - ours(ids)).abs(), ours(ids).std()
            largest, mean = ROUNDING_TOLERANCE[dtype]
            assert 0 < diff.max() / scale < largest and diff.mean() / scale < mean
    prompt = ids[0, :10].tolist()
    assert greedy(back, prompt) == greedy(want, prompt)
    if dtype != "q8_0":
        assert greedy(back, prompt) == greedy(ours, prompt)


@pytest.mark.parametrize("dtype, kind", [("f32", "F32"), ("f16", "F16"), ("q8_0", "Q8_0")])
def test_the_gguf_reader_sees_what_llama_cpp_reads(models, tmp_path, tok, dtype, kind):
    ours, folder = models["qwen3"]
    f = GGUFFile(export_gguf(folder, tmp_path / "m.gguf", dtype))
    assert f.architecture == "qwen3"
    assert f.value("tokenizer.ggml.model") == "gpt2" and f.value("tokenizer.ggml.pre") == "gpt-2"
    assert f.value("tokenizer.ggml.bos_token_id") == tok.bos and f.value("tokenizer.ggml.eos_token_id") == tok.end
    assert f.value("tokenizer.ggml.add_bos_token") is False
    assert f.value("qwen3.attention.key_length") == 24 and f.value("qwen3.block_count") == 2
    tokens, types = f.value("tokenizer.ggml.tokens"), f.value("tokenizer.ggml.token_type")
    assert len(tokens) == ours.cfg.vocab_size == tok.vocab_size + 64  # padded as the embedding is
    assert {tokens[i] for i, t in enumerate(types) if t == 3} == set(tok.special)  # control tokens
    assert tokens[-1] == f"[PAD{ours.cfg.vocab_size - 1}]" and types[-1] == 5
    assert "<|assistant|>" in f.value("tokenizer.chat_template")
    t = f.tensors
    assert t["blk.0.attn_q.weight"].tensor_type.name == kind and t["token_embd.weight"].tensor_type.name == kind
    assert t["blk.0.attn_q_norm.weight"].tensor_type.name == "F32"
    assert "output.weight" in t and "blk.1.ffn_gate.weight" in t


def test_its_tokenizer_gives_our_ids_with_our_leading_space_written_by_the_caller(models, tmp_path, tok):
    f = GGUFFile(export_gguf(models["llama"][1], tmp_path / "m.gguf"))
    t = tokenizer_from_gguf(f)  # llama.cpp's BPE adds no space in front: the caller or the template does
    for text in TEXTS:
        assert t.encode(" " + text, add_special_tokens=False).ids == tok.encode(text), text
        assert t.decode(tok.encode(text)) == " " + text


def test_our_chat_loader_reads_it_back_with_our_prompts(models, tmp_path, tok):
    ours, folder = models["qwen3"]
    model, t = load_chat_model(export_gguf(folder, tmp_path / "m.gguf"))
    assert t.stop_ids == {tok.end}
    for messages in CONVERSATIONS:
        ids = render_prompt(t, messages)
        assert ids == render_prompt(tok, messages)
        assert greedy(model, ids) == greedy(ours, ids)


def test_relu2_and_a_folder_as_out_are_one_line(models, tmp_path, tok):
    tiny_ours(tok, tmp_path / "relu2", mlp="relu2")
    with pytest.raises(ColossusError, match="mlp = 'relu2' has no llama.cpp architecture"):
        export_gguf(tmp_path / "relu2", tmp_path / "m.gguf")
    with pytest.raises(ColossusError, match="is a folder"):
        export_gguf(models["llama"][1], tmp_path)
    with pytest.raises(ColossusError, match="--dtype must be one of f32, f16, q8_0"):
        export_gguf(models["llama"][1], tmp_path / "m.gguf", "q4_0")


def test_a_tokenizer_with_whole_words_is_refused_in_one_line(tmp_path, world_texts):
    from colossus.data.tokenizer import Tokenizer

    whole = Tokenizer.train(world_texts, vocab_size=512, whole_words=5)
    tiny_ours(whole, tmp_path / "m", mlp="swiglu", qk_norm=False)
    with pytest.raises(ColossusError, match="whole_word_min=0") as e:
        export_gguf(tmp_path / "m", tmp_path / "m.gguf")
    assert "\n" not in str(e.value)
