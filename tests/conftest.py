"""Shared fixtures: a tiny world and a tokenizer trained on it, built once per test session."""

from __future__ import annotations

import pytest
import torch

from colossus.data.prepare import chat_texts
from colossus.data.tokenizer import Tokenizer
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT
from colossus.world.build import World, WorldConfig, build_world


@pytest.fixture(scope="session")
def world() -> World:
    return build_world(WorldConfig(entities=60, docs_per_entity=3, qa_per_entity=2, unknown_names=1.0,
                                   eval_known=30, eval_unknown=30, eval_premise=20, heldout_docs=20))


@pytest.fixture(scope="session")
def world_texts(world) -> list[str]:
    """What a tokenizer of the world trains on: its documents and its chats' messages."""
    return [d["text"] for d in world.documents] + list(chat_texts(world.chats))


@pytest.fixture(scope="session")
def tok(world_texts) -> Tokenizer:
    return Tokenizer.train(world_texts, vocab_size=512)


@pytest.fixture
def tiny_model(tok) -> GPT:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, seq_len=64, n_layer=2, d_model=32, n_head=2, n_kv_head=1)
    return GPT(cfg).eval()


@pytest.fixture(scope="session")
def tool_model_dir(tmp_path_factory, tok):
    """A model trained to call the tools and cite on the fixed conversations of tests/tool_model.py."""
    from tool_model import write_tool_model

    return write_tool_model(tmp_path_factory.mktemp("tool-model") / "tools", tok)
