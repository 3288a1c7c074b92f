"""Our GGUF export in llama.cpp itself (llama-cpp-python): it tokenizes text with digits, punctuation, accents and
runs of spaces into our ids (llama.cpp's BPE adds no leading space: the caller writes it, as the file's chat
template does), renders the file's chat template into our prompt's ids, and computes our logits.

llama.cpp runs here with an F32 KV cache (its default is F16, which rounds every key and value). Then in F32 its
logits are ours within 1e-4 and its greedy tokens are ours. In F16 and Q8_0 it also rounds the activations a
matrix multiplies (to F16; to 8-bit blocks of 32), so its logits are those of our model with the same rounded
matrices only within a tolerance, measured on these tiny models at about 0.6% and 20% of the logits' standard
deviation (bounded here at 2% and 35%). The models are taught one reply for a moment first (a random model's top
two logits are often closer than that rounding), and llama.cpp then generates our greedy tokens in every type.

    make test-peers        # installs llama-cpp-python (a source build, about 7 minutes) and runs these

Marked `peers`; skipped with the reason when llama_cpp is not importable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from export_tiny import CONVERSATIONS, TEXTS, greedy, rounded, tiny_ours

from colossus.data.chat_template import render_prompt
from colossus.model.export_gguf import export_gguf

pytestmark = pytest.mark.peers
llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: `make test-peers` builds "
                                "and installs it (about 7 minutes from its sdist)")

CASES = {"llama": dict(mlp="swiglu", qk_norm=False), "qwen2": dict(mlp="swiglu", qk_norm=False, qkv_bias=True),
         "qwen3": dict(mlp="swiglu", qk_norm=True, head_size=24),
         "mixtral": dict(mlp="swiglu", qk_norm=False, n_experts=4, experts_per_token=2)}
RUNS = [(c, "f32") for c in sorted(CASES)] + [(c, d) for c in ("llama", "qwen3") for d in ("f16", "q8_0")]
TOLERANCE = {"f16": 0.02, "q8_0": 0.35}  # of the logits' standard deviation: llama.cpp's rounded activations


REPLY = " Sitor Vale was born in 1873, in Ostrel; café  12!"


def taught(model, tok, folder):
    """The random model trained for a moment to answer every conversation with REPLY, and saved again: a trained
    model's greedy choices stand clear of the rounding the 16- and 8-bit files add, a random one's barely do."""
    from colossus.model.io import save_model

    seqs = [render_prompt(tok, m) + tok.encode(REPLY.strip()) for m in CONVERSATIONS]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(80):
        for seq in seqs:
            x = torch.tensor([seq])
            loss = model(x[:, :-1], x[:, 1:])
            opt.zero_grad()
            loss.backward()
            opt.step()
    save_model(folder, model.eval(), folder / "tokenizer.json")
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory, tok):
    root = tmp_path_factory.mktemp("export-peers")
    return {name: (taught(tiny_ours(tok, root / name, **config), tok, root / name), root / name)
            for name, config in CASES.items()}


def llama(path):
    f32 = llama_cpp.GGML_TYPE_F32
    return llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=1, verbose=False, logits_all=True,
                           type_k=f32, type_v=f32)


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
        reply = greedy(want, ids)
        if dtype == "f32":
            assert llama_greedy(llm, ids) == reply
        seq = ids + reply  # teacher-forced: both read our greedy reply
        llm.reset()
        llm.eval(seq)
        theirs = np.array(llm.scores[:len(seq)])
        with torch.no_grad():
            mine = want(torch.tensor([seq]))[0].numpy()
        bound = 1e-4 if dtype == "f32" else TOLERANCE[dtype] * mine.std()
        np.testing.assert_allclose(theirs, mine, rtol=0, atol=bound)
        top = np.sort(mine, -1)
        clear = top[:, -1] - top[:, -2] > 2 * bound  # positions whose greedy choice no rounding within it can flip
        assert clear[len(ids) - 1:].all()  # every token of the reply: the model was taught it
        assert (theirs.argmax(-1) == mine.argmax(-1))[clear].all()
        if dtype != "f32":
            assert llama_greedy(llm, ids) == reply
