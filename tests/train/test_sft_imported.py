"""colossus sft --init on an imported model: a Hugging Face folder is fine-tuned with its own tokenizer and chat
template (the shards packed through the template, the loss on the assistant's tokens only), and the model it
writes chats through that template with what it learnt."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from hf_tiny import tiny_hf, with_tokenizer

from colossus.data.shards import Shards
from colossus.data.template_tokenizer import TemplateTokenizer
from colossus.infer.generate import generate_batch
from colossus.model import load_chat_model

transformers = pytest.importorskip("transformers")

QUESTION = "What is the capital of Zorbia?"
ANSWER = "Vell is the capital of Zorbia."


def hf_folder(path, tok):
    hf = tiny_hf(transformers.LlamaConfig, transformers.LlamaForCausalLM, vocab_size=tok.vocab_size,
                 hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True)
    hf.save_pretrained(path)
    return with_tokenizer(path, tok)


def colossus(*args, cwd):
    r = subprocess.run([sys.executable, "-m", "colossus.cli", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, timeout=600)
    assert r.returncode == 0, r.stderr
    return r


def test_the_template_weighs_the_assistants_tokens_only(tmp_path, tok):
    t = TemplateTokenizer.from_hf_folder(hf_folder(tmp_path, tok))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": ANSWER}, {"role": "user", "content": "And?"},
                {"role": "assistant", "content": "That is all."}]
    ids, weights = t.render(messages)
    assert len(ids) == len(weights)
    trained = t.hf.decode([i for i, w in zip(ids, weights, strict=True) if w], skip_special_tokens=False)
    assert trained == f"{ANSWER}<|end|>\nThat is all.<|end|>\n"  # each reply and the end of its turn
    assert ids[:len(t.render_prompt(messages[:2]))] == t.render_prompt(messages[:2])


def test_sft_fine_tunes_a_hugging_face_folder_through_its_own_template(tmp_path, tok):
    folder = hf_folder(tmp_path / "hf", tok)
    chats = tmp_path / "chats.jsonl"
    chats.write_text("".join(json.dumps({"messages": [{"role": "user", "content": QUESTION},
                                                      {"role": "assistant", "content": ANSWER}]}) + "\n"
                             for _ in range(16)))
    colossus("data", "shards", "--chats", chats, "--tokenizer", folder, "--out", tmp_path / "shards", "--seq-len", 63,
             cwd=tmp_path)
    assert Shards(tmp_path / "shards").row_len == 64
    r = colossus("sft", "--data", tmp_path / "shards", "--init", folder, "--out", tmp_path / "sft",
                 "--set", "sft.steps=60", "--set", "sft.batch_size=8", "--set", "sft.warmup_steps=5",
                 "--set", "sft.lr=0.01", "--set", "sft.log_every=10", cwd=tmp_path)
    assert "model written to" in r.stdout
    losses = [json.loads(line)["loss"] for line in (tmp_path / "sft/metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert losses[-1] < 0.2 * losses[0]

    model, t = load_chat_model(tmp_path / "sft")
    assert isinstance(t, TemplateTokenizer) and model.cfg.tie_embeddings
    prompt = t.render_prompt([{"role": "user", "content": QUESTION}])
    with torch.no_grad():
        [out] = generate_batch(model, [prompt], 32, set(t.stop_ids))
    assert t.decode(out.ids) == ANSWER


def test_a_tokenizer_beside_an_imported_init_is_refused(tmp_path, tok):
    folder = hf_folder(tmp_path / "hf", tok)
    r = subprocess.run([sys.executable, "-m", "colossus.cli", "sft", "--data", tmp_path, "--init", folder,
                        "--tokenizer", folder / "tokenizer.json", "--out", tmp_path / "o"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "brings its own tokenizer" in r.stderr and "Traceback" not in r.stderr
