"""Our models out as Hugging Face folders: each family we map onto (llama, qwen3, arcee, apertus, qwen2) loads in
transformers' AutoModelForCausalLM with our logits (float32, within 1e-4) and our greedy tokens; AutoTokenizer gives
our ids and decodes them back, its chat template gives our prompt's ids; and our own loaders read the folder back
with the same logits and the same prompts."""

from __future__ import annotations

import json

import pytest
import torch
from export_tiny import CONVERSATIONS, TEXTS, greedy, tiny_ours

from colossus.data.chat_template import render, render_prompt
from colossus.errors import ColossusError
from colossus.model import load_chat_model, load_model
from colossus.model.export_hf import export_hf

transformers = pytest.importorskip("transformers")

CASES = {  # family: (our config, transformers' class)
    "llama": (dict(mlp="swiglu", qk_norm=False), "LlamaForCausalLM"),
    "llama-tied": (dict(mlp="swiglu", qk_norm=False, tie_embeddings=True), "LlamaForCausalLM"),
    "qwen2": (dict(mlp="swiglu", qk_norm=False, qkv_bias=True), "Qwen2ForCausalLM"),
    "qwen3": (dict(mlp="swiglu", qk_norm=True, head_size=24), "Qwen3ForCausalLM"),
    "arcee": (dict(mlp="relu2", qk_norm=False), "ArceeForCausalLM"),
    "apertus": (dict(mlp="relu2", qk_norm=True), "ApertusForCausalLM"),  # what the presets train
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tok):
    """family -> (our model, the exported folder)"""
    root = tmp_path_factory.mktemp("export-hf")
    out = {}
    for family, (config, _) in CASES.items():
        model = tiny_ours(tok, root / family, **config)  # every weight random, qwen2's biases too
        out[family] = model, export_hf(root / family, root / f"{family}-hf")
    return out


@pytest.mark.parametrize("family", sorted(CASES))
def test_transformers_loads_it_with_our_logits_and_greedy_tokens(exported, family):
    ours, folder = exported[family]
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert type(hf).__name__ == CASES[family][1]
    ids = torch.randint(0, ours.cfg.vocab_size, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ours(ids)
        torch.testing.assert_close(hf(ids).logits, want, atol=1e-4, rtol=0)
    prompt = ids[0, :10].tolist()
    mine = greedy(ours, prompt)
    with torch.no_grad():
        theirs = hf.generate(torch.tensor([prompt]), max_new_tokens=12, min_new_tokens=12, do_sample=False)
    assert theirs[0, len(prompt):].tolist() == mine
    assert len(set(mine)) > 1  # the blocks decide, not one token repeated

    back = load_model(folder)  # our importer: the round trip
    torch.testing.assert_close(back(ids), want, atol=1e-5, rtol=0)


def test_config_and_generation_config_name_our_special_tokens(exported, tok):
    _, folder = exported["apertus"]
    config = json.loads((folder / "config.json").read_text())
    assert config["hidden_act"] == "relu2" and config["model_type"] == "apertus"
    gen = json.loads((folder / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tok.special["<|end|>"] and gen["bos_token_id"] == tok.special["<|bos|>"]
    t = transformers.AutoTokenizer.from_pretrained(folder)
    assert (t.bos_token, t.eos_token, t.pad_token) == ("<|bos|>", "<|end|>", "<|pad|>")
    assert t.eos_token_id == tok.end


def test_transformers_tokenizer_gives_our_ids_and_decodes_them_back(exported, tok):
    t = transformers.AutoTokenizer.from_pretrained(exported["llama"][1])
    for text in TEXTS:
        ids = tok.encode(text)
        assert t.encode(text, add_special_tokens=False) == ids, text
        assert t.decode(ids) == text == tok.decode(ids)
    assert t.encode("<|user|>", add_special_tokens=False) == [tok.special["<|user|>"]]  # specials are one id


def test_chat_template_renders_our_prompts(exported, tok):
    t = transformers.AutoTokenizer.from_pretrained(exported["qwen3"][1])
    tools = [{"role": "user", "content": "Weather in Ostrel?"}, {"role": "tool_call", "content": '{"q": "Ostrel"}'},
             {"role": "tool", "content": "Rain, 12 C."}, {"role": "assistant", "content": "It rains."}]
    for messages in [*CONVERSATIONS, tools]:
        want = render_prompt(tok, messages)
        got = t.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        assert got == want
        text = t.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert t.encode(text, add_special_tokens=False) == want
        whole = t.apply_chat_template(messages, tokenize=True, return_dict=False)
        assert whole == render(tok, messages)[0]


def test_our_chat_loader_reads_it_back_with_the_same_prompts_and_text(exported, tok):
    ours, folder = exported["apertus"]
    model, t = load_chat_model(folder)
    for messages in CONVERSATIONS:
        ids = render_prompt(t, messages)
        assert ids == render_prompt(tok, messages)
        x = torch.tensor([ids])
        with torch.no_grad():
            torch.testing.assert_close(model(x), ours(x), atol=1e-5, rtol=0)
    assert t.stop_ids == {tok.end}
    for text in TEXTS:
        assert t.encode(text) == tok.encode(text) and t.decode(tok.encode(text)) == text
    from colossus.data.tokenizer import StreamDecoder

    stream = StreamDecoder(t)  # a reply streamed token by token keeps its spaces, less the leading one
    ids = tok.encode(" ".join(TEXTS) * 6)  # longer than the decoder's 64-token window
    assert "".join(stream.push(i) for i in ids) + stream.flush() == tok.decode(ids)


def test_a_field_no_family_has_is_one_line(tmp_path, tok):
    tiny_ours(tok, tmp_path / "m", qkv_bias=True, qk_norm=True)
    with pytest.raises(ColossusError, match="qkv_bias = true goes with"):
        export_hf(tmp_path / "m", tmp_path / "out")


def test_a_tokenizer_with_whole_words_exports_and_transformers_encodes_as_we_do(tmp_path, world_texts):
    """The feed preset's tokenizer (data.whole_word_min): frequent capitalised words are vocabulary entries the BPE
    takes whole, every other capitalised word is spelt from a bare space and its capital letter."""
    from colossus.data.tokenizer import Tokenizer

    whole = Tokenizer.train(world_texts, vocab_size=512, whole_words=5)
    tiny_ours(whole, tmp_path / "m", mlp="swiglu", qk_norm=False)
    t = transformers.AutoTokenizer.from_pretrained(export_hf(tmp_path / "m", tmp_path / "hf"))
    texts = [*world_texts[:20], *TEXTS, "Druklopo Falls met Zizhym Vale's brother in Ostrel."]
    bare = whole.encode("Druklopo")[0]  # a name it never saw opens with the bare space
    assert whole.encode("Druklopo")[1] == whole.encode("D")[-1]
    spelt = 0
    for text in texts:
        ids = whole.encode(text)
        assert t.encode(text, add_special_tokens=False) == ids, text
        assert t.decode(ids) == text == whole.decode(ids)
        spelt += bare in ids  # a word spelt from the bare space: a path the BPE alone never takes
    assert spelt > 0
    _, back = load_chat_model(tmp_path / "hf")
    assert all(back.encode(text) == whole.encode(text) for text in texts)
