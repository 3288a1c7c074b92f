"""The serving benchmark's model directories: the peer must read the very prompt ids our server reads,
and must never stop before max_tokens (its server has no ignore_eos)."""

from __future__ import annotations

import importlib.util
import json

import pytest

pytest.importorskip("aiohttp", reason="the benchmark client needs aiohttp (pip install -e '.[dev]')")

from benchmarks.serve import Shape, markdown, payload, pick_conversations, ratios, save_ours, save_peer, server_argv  # noqa: E402
from colossus.data.chat_template import render_prompt  # noqa: E402
from colossus.model.config import ModelConfig  # noqa: E402
from colossus.model.io import load_model  # noqa: E402

needs_transformers = pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                                        reason="the peer's model needs transformers: pip install -e '.[bench]'")


@pytest.fixture
def shape(tok) -> Shape:
    cfg = ModelConfig(vocab_size=tok.vocab_size, seq_len=128, n_layer=2, d_model=64, n_head=2, n_kv_head=2,
                      mlp="swiglu")
    return Shape("tiny", cfg, {1: 2}, "test")


@needs_transformers
def test_peer_reads_our_prompt_ids_and_has_no_end_id(tmp_path, tok, world, shape):
    tok.save(tmp_path / "tokenizer.json")
    n_peer = save_peer(shape, tmp_path / "tokenizer.json", tmp_path / "peer")
    n_ours = save_ours(shape, tmp_path / "tokenizer.json", tmp_path / "ours")
    assert load_model(tmp_path / "ours").cfg == shape.cfg
    # same shape; ours has QK-norm (two head_dim-wide RMSNorm weights per layer) and nothing else more
    assert n_ours - n_peer == shape.cfg.n_layer * 2 * shape.cfg.head_dim

    from transformers import AutoTokenizer

    peer = AutoTokenizer.from_pretrained(tmp_path / "peer")
    convs = pick_conversations(world.chats, tok, 5, max_prompt=64, seed=0)
    for conv in convs:
        ids = peer.apply_chat_template(conv, add_generation_prompt=True, tokenize=True, return_dict=True)
        assert ids["input_ids"] == render_prompt(tok, conv)
        assert 30 <= len(ids["input_ids"]) <= 60
    assert len({json.dumps(c) for c in convs}) == 5  # every request its own conversation

    cfg = json.loads((tmp_path / "peer" / "config.json").read_text())
    gen = json.loads((tmp_path / "peer" / "generation_config.json").read_text())
    assert cfg.get("eos_token_id") is None and gen.get("eos_token_id") is None
    assert cfg["intermediate_size"] == shape.cfg.mlp_hidden and cfg["tie_word_embeddings"] is False


def test_only_our_payload_asks_to_ignore_eos():
    conv = [{"role": "user", "content": "hi"}]
    assert payload("colossus", "m", conv, 64)["ignore_eos"] is True
    peer = payload("transformers", "m", conv, 64)
    assert "ignore_eos" not in peer and peer["max_tokens"] == 64 and peer["stream"] is True


def test_our_kv_cache_type_reaches_our_server_only(tmp_path):
    ours = server_argv("colossus", tmp_path / "m", 8000, "float32", kv_dtype="bfloat16")
    assert ours[ours.index("--kv-dtype") + 1] == "bfloat16" and ours[ours.index("--weights") + 1] == "float32"
    assert "--kv-dtype" not in server_argv("colossus", tmp_path / "m", 8000, "float32")
    assert "--kv-dtype" not in server_argv("transformers", tmp_path / "m", 8000, "float32", kv_dtype="bfloat16")


def test_the_device_reaches_both_servers(tmp_path):
    for side in ("colossus", "transformers"):
        argv = server_argv(side, tmp_path / "m", 8000, "bfloat16", device="cuda")
        assert argv[argv.index("--device") + 1] == "cuda"
        assert server_argv(side, tmp_path / "m", 8000, "float32")[argv.index("--device") + 1] == "cpu"


def test_ratios_compare_with_the_peer_and_with_our_own_first_level():
    def row(server, conc, tput):
        times = {f"{s}_{k}_ms": 1.0 for s in ("median", "p99") for k in ("ttft", "tpot", "itl")}
        return {"model": "m", "weights": "float32", "server": server, "concurrency": conc,
                "output_throughput": tput, "completed": 4, "requests": 4, "request_throughput": 1.0, **times}
    rows = [row("colossus", 1, 100.0), row("colossus", 32, 800.0), row("transformers", 1, 50.0),
            row("transformers", 32, 200.0)]
    rat = {r["concurrency"]: r for r in ratios(rows)}
    assert rat[32]["ours_over_peer"] == 4.0 and rat[1]["ours_over_peer"] == 2.0
    assert rat[32]["colossus_over_own_c1"] == 8.0 and rat[32]["transformers_over_own_c1"] == 4.0
    table = markdown(rows, ratios(rows))
    assert "| m | float32 | float32 | colossus | 32 | 4/4 | 1.00 | 800.0 | 4.00x |" in table
