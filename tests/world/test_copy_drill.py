"""The copy drill: conversations answered only by copying from the question, whose invented words occur nowhere
else in the world, mixed into the drill without changing anything else."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace

import pytest

from colossus.errors import ColossusError
from colossus.world.build import WorldConfig, build_world, write_world
from colossus.world.copy_drill import KINDS, ORDINALS, PICK, RECALL, REPEAT
from colossus.world.names import ORG_SUFFIXES, PLACE_KINDS

BASE = WorldConfig(entities=40, docs_per_entity=2, no_record_docs=0.5, readers=0.5, premise_drill_per_entity=1.0,
                   eval_known=10, eval_unknown=10, eval_premise=8, eval_recombined=6, heldout_docs=10)
COPY = replace(BASE, copy_drill_per_entity=3.0)


@pytest.fixture(scope="module")
def worlds():
    return build_world(BASE), build_world(COPY)


def copy_chats(world) -> list[dict]:
    return [c for c in world.drill_chats if c["kind"].startswith("copy_")]


def words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z]+|\d+", text))


def test_the_copy_drill_adds_its_chats_to_the_drill_and_changes_nothing_else(worlds):
    plain, drilled = worlds
    assert copy_chats(plain) == []
    chats = copy_chats(drilled)
    assert len(chats) == round(COPY.entities * COPY.copy_drill_per_entity)
    assert Counter(c["kind"] for c in chats) == {f"copy_{k}": len(chats) // len(KINDS) for k in KINDS}
    others = [c for c in drilled.drill_chats if not c["kind"].startswith("copy_")]
    assert sorted(map(json.dumps, others)) == sorted(map(json.dumps, plain.drill_chats))
    assert drilled.drill_chats != others + chats  # shuffled in, not appended
    assert drilled.documents == plain.documents and drilled.chats == plain.chats and drilled.eval == plain.eval
    assert [u.to_dict() for u in drilled.unknown] == [u.to_dict() for u in plain.unknown]
    assert build_world(COPY).drill_chats == drilled.drill_chats  # seeded


def test_every_reply_is_copied_from_its_question(worlds):
    for c in copy_chats(worlds[1]):
        question, reply = c["messages"][-2]["content"], c["messages"][-1]["content"]
        assert c["messages"][-1]["role"] == "assistant"
        if c["kind"] in ("copy_repeat", "copy_pick"):
            assert reply in question
        fresh = words(reply) - {w for _, _, a in RECALL for w in words(a)}
        assert fresh and fresh <= words(question)


def test_the_invented_words_are_new_to_the_world_and_each_in_one_conversation(worlds):
    plain, drilled = worlds
    names = {w.lower() for n in [e.name for e in plain.entities] + [u.name for u in plain.unknown] for w in n.split()}
    world_text = " ".join([d["text"] for d in plain.documents + plain.heldout_documents]
                          + [m["content"] for c in plain.chats + plain.drill_chats for m in c["messages"]])
    seen = {w.lower() for w in words(world_text)} | names
    template = {w.lower() for t in REPEAT + PICK + ORDINALS + tuple(x for r in RECALL for x in r[1:]) for w in words(t)}
    # the words names share: first names, kinds of place and of organisation
    common = {e.name.split()[0] for e in plain.entities if e.kind == "person"} | set(PLACE_KINDS) | set(ORG_SUFFIXES)
    conversations: Counter = Counter()  # invented word -> conversations using it
    for c in copy_chats(drilled):
        asked = words(c["messages"][-2]["content"]) - common
        asked = {w for w in asked if not w.isdigit() and w.lower() not in template}
        assert not {w.lower() for w in asked} & names  # no word of a name in the world
        conversations.update(w for w in asked if w.lower() not in seen)
    assert len(conversations) > 2 * len(copy_chats(drilled))
    assert set(conversations.values()) == {1}


def test_a_world_without_the_copy_drill_leaves_it_out_of_world_json(tmp_path, worlds):
    write_world(worlds[0], tmp_path / "plain")
    write_world(worlds[1], tmp_path / "drilled")
    assert "copy_drill_per_entity" not in json.loads((tmp_path / "plain/world.json").read_text())["config"]
    meta = json.loads((tmp_path / "drilled/world.json").read_text())
    assert meta["config"]["copy_drill_per_entity"] == COPY.copy_drill_per_entity
    assert meta["counts"]["drill_chats"] == len(worlds[1].drill_chats)


def test_a_negative_copy_drill_is_a_clear_error():
    with pytest.raises(ColossusError, match="copy_drill_per_entity"):
        replace(BASE, copy_drill_per_entity=-1.0)
