"""Our GGUF export in llama.cpp itself (llama-cpp-python): it tokenizes text with digits, punctuation, accents and
runs of spaces into our ids (llama.cpp's BPE adds no leading space: the caller writes it, as the file's chat
template does), renders the file's chat template into our prompt's ids, and generates our greedy tokens in F32,
F16 and Q8_0 (for the rounded types, the greedy tokens of our model with its matrices rounded as the file stores
them).

    make test-peers        # installs llama-cpp-python (a source build, about 7 minutes) and runs these

Marked `peers`; skipped with the reason when llama_cpp is not importable."""

from __future__ import annotations

import pytest
from export_tiny import CONVERSATIONS, TEXTS, greedy, rounded, tiny_ours

from colossus.data.chat_template import render_prompt
from colossus.model.export_gguf import export_gguf

pytestmark = pytest.mark.peers
llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: `make test-peers` builds "
                                "and installs it (about 7 minutes from its sdist)")

CASES = {"llama": dict(mlp="swiglu", qk_norm=False), "qwen2": dict(mlp="swiglu", qk_norm=False, qkv_bias=True),
         "qwen3": dict(mlp="swiglu", qk_norm=True, head_size=24)}
RUNS = [(c, "f32") for c in sorted(CASES)] + [(c, d) for c in ("llama", "qwen3") for d in ("f16", "q8_0")]


@pytest.fixture(scope="module")
def models(tmp_path_factory, tok):
    root = tmp_path_factory.mktemp("export-peers")
    return {name: (tiny_ours(tok, root / name, **config), root / name) for name, config in CASES.items()}


def llama(path):
    return llama_cpp.Llama(model_path=str(path), n_ctx=64, n_threads=1, verbose=False)


def llama_greedy(llm, prompt: list[int], n: int = 12) -> list[int]:
    llm.reset()
    out = []
    for t in llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
        out.append(t)
        if len(out) == n:
            break
    return out


@pytest.mark.parametrize("name, dtype", RUNS)
def test_llama_cpp_tokenizes_renders_and_generates_as_we_do(models, tmp_path, tok, name, dtype):
    ours, folder = models[name]
    llm = llama(export_gguf(folder, tmp_path / "m.gguf", dtype))
    for text in TEXTS:
        assert llm.tokenize((" " + text).encode(), add_bos=False, special=False) == tok.encode(text), text
        assert llm.detokenize(tok.encode(text)).decode() == " " + text
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata["tokenizer.chat_template"]
    formatter = Jinja2ChatFormatter(template, eos_token="<|end|>", bos_token="<|bos|>")
    want = ours if dtype == "f32" else rounded(ours, dtype)
    for messages in CONVERSATIONS:
        ids = render_prompt(tok, messages)
        prompt = formatter(messages=messages).prompt
        assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == ids
        assert llama_greedy(llm, ids) == greedy(want, ids)
