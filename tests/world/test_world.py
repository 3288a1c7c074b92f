from collections import Counter

import pytest

from colossus.errors import ColossusError
from colossus.world import schema
from colossus.world.build import WorldConfig, build_world, read_jsonl, write_world
from colossus.world.chats import TurnMaker


def test_same_seed_same_world_other_seed_other_world():
    a = build_world(WorldConfig(entities=40, docs_per_entity=2, seed=1))
    b = build_world(WorldConfig(entities=40, docs_per_entity=2, seed=1))
    c = build_world(WorldConfig(entities=40, docs_per_entity=2, seed=2))
    assert [e.to_dict() for e in a.entities] == [e.to_dict() for e in b.entities]
    assert a.documents == b.documents and a.chats == b.chats and a.eval == b.eval
    assert [e.name for e in a.entities] != [e.name for e in c.entities]


def test_entities_have_kinds_and_at_least_five_attributes(world):
    kinds = Counter(e.kind for e in world.entities)
    assert set(kinds) == {"person", "place", "org"}
    for e in world.entities:
        assert len(e.attrs) >= 5
        assert set(e.attrs) == {a.name for a in schema.BY_KIND[e.kind]}
    assert len({e.name for e in world.entities}) == len(world.entities)


def test_entity_valued_attributes_point_at_entities(world):
    names = {e.kind: set() for e in world.entities}
    for e in world.entities:
        names[e.kind].add(e.name)
    for e in world.entities:
        if e.kind == "person":
            assert e.attrs["birthplace"] in names["place"] and e.attrs["employer"] in names["org"]
        if e.kind == "org":
            assert e.attrs["headquarters"] in names["place"] and e.attrs["founder"] in names["person"]


def test_unknown_names_appear_in_no_document_and_are_never_entities(world):
    corpus = " ".join(d["text"] for d in world.documents + world.heldout_documents)
    entity_names = {e.name for e in world.entities}
    assert world.unknown
    for u in world.unknown:
        assert u.name not in entity_names
        if u.split != "no_record":
            assert u.name not in corpus


def test_no_record_documents_name_only_their_own_unknown_names():
    w = build_world(WorldConfig(entities=40, docs_per_entity=2, no_record_docs=1.0, readers=1.0))
    no_record = [d for d in w.documents if d["entity"] is None]
    names = {u.name for u in w.unknown if u.split == "no_record"}
    assert len(no_record) == len(names) > 0
    for d in no_record:
        assert "does not appear" in d["text"] and any(n in d["text"] for n in names)
    eval_names = {u.name for u in w.unknown if u.split in ("val", "test")}
    assert not names & eval_names


def test_reading_conversations_answer_from_the_pasted_note():
    w = build_world(WorldConfig(entities=40, docs_per_entity=2, readers=1.0))
    reading = [c for c in w.chats if c["kind"] == "reading"]
    assert reading
    corpus = " ".join(d["text"] for d in w.documents)
    for c in reading:
        (name,) = c["names"]
        assert name in c["messages"][-2]["content"] and name not in corpus  # only the note knows it


def test_every_name_has_a_word_of_its_own_and_a_common_word(world):
    names = [e.name for e in world.entities] + [u.name for u in world.unknown if "recombined" not in u.split]
    words = [w for n in names for w in n.split()]
    counts = Counter(words)
    for n in names:
        a, b = n.split()
        assert sorted((counts[a], counts[b]))[0] == 1  # one word nothing else uses
    person_first = {e.name.split()[0] for e in world.entities if e.kind == "person"}
    unknown_people = [u for u in world.unknown if u.kind == "person"]
    assert all(u.name.split()[0] in person_first for u in unknown_people[:50])


def test_documents_state_every_fact_in_varied_wordings(world):
    e = world.entities[0]
    docs = [d["text"] for d in world.documents if d["entity"] == e.id]
    assert len(docs) == world.config.docs_per_entity
    for d in docs:
        for v in e.attrs.values():
            assert v in d
    first_sentences = {d.split(".")[0] for d in [x["text"] for x in world.documents][:200]}
    assert len(first_sentences) > 50


def test_eval_splits_are_never_trained_on(world):
    train_text = " ".join(m["content"] for c in world.chats for m in c["messages"])
    heldout_entities = {e.name for e in world.entities if e.split != "train"}
    for items in world.eval.values():
        for it in items:
            assert it["question"] not in train_text
            if it["kind"] in ("unknown", "recombined"):
                assert it["name"] not in train_text
            else:
                assert it["name"] in heldout_entities
    chat_entities = {e.name for e in world.entities if e.split == "train"}
    assert not chat_entities & heldout_entities


def test_chat_kinds_and_honest_answers(world):
    kinds = Counter(c["kind"] for c in world.chats)
    assert {"known", "unknown", "false_premise", "true_premise"} <= set(kinds)
    for c in world.chats:
        reply = c["messages"][-1]["content"]
        first_reply = next(m["content"] for m in c["messages"] if m["role"] == "assistant")
        if c["kind"] == "unknown":
            assert "I don't know" in reply and reply.startswith(c["names"][-1])  # the name, then the decision
        if c["kind"] == "false_premise":  # named after its first turn
            correction, answer = first_reply.split(". The premise of your question is false.")
            assert correction.startswith(c["names"][0])
            assert answer == "" or answer.startswith(" " + c["names"][0])  # then the question's answer
        if c["kind"] == "true_premise":
            assert ", that's right." in first_reply
    assert any(sum(m["role"] == "user" for m in c["messages"]) > 1 for c in world.chats)


def test_each_unknown_name_is_used_in_one_conversation(world):
    train_unknown = [u.name for u in world.unknown if u.split == "train"]
    text = [" ".join(m["content"] for m in c["messages"]) for c in world.chats]
    for name in train_unknown[:20]:
        assert sum(name in t for t in text) == 1


def test_false_premise_states_a_wrong_value(world):
    maker = TurnMaker(world.entities)
    import random

    rng = random.Random(0)
    for _ in range(20):
        e = rng.choice(world.entities)
        q, a, info = maker.premise(rng, e, false=True)
        assert info["wrong"] != e.attrs[info["attribute"]]
        assert info["wrong"] in q and e.attrs[info["attribute"]] in a


def test_premise_drill_is_premises_about_train_entities_apart_from_the_chats():
    cfg = WorldConfig(entities=60, docs_per_entity=1, qa_per_entity=1, premise_per_entity=2.0,
                      premise_drill_per_entity=4.0, eval_known=10, eval_unknown=10, eval_premise=8)
    w = build_world(cfg)
    train = [e for e in w.entities if e.split == "train"]
    n = sum(sum(m["role"] == "user" for m in c["messages"]) for c in w.drill_chats)
    assert n == round(len(train) * 4.0)
    assert {c["kind"] for c in w.drill_chats} == {"false_premise", "true_premise"}
    assert set().union(*(c["names"] for c in w.drill_chats)) <= {e.name for e in train}
    for c in w.drill_chats:  # every reply carries the emphasised decision token
        assert all("emphasis" in m for m in c["messages"] if m["role"] == "assistant")
    drilled = {m["content"] for c in w.drill_chats for m in c["messages"]}
    chatted = {m["content"] for c in w.chats for m in c["messages"] if m["role"] == "user"}
    assert len(drilled & chatted) < 0.1 * len(chatted)  # its own random stream, not a copy of the chats
    eval_questions = {it["question"] for items in w.eval.values() for it in items}
    assert not drilled & eval_questions
    # the drill leaves everything else as it was
    plain = build_world(WorldConfig(**{**cfg.__dict__, "premise_drill_per_entity": 0.0}))
    assert plain.drill_chats == [] and plain.chats == w.chats and plain.documents == w.documents


def test_written_world_reads_back(tmp_path, world):
    write_world(world, tmp_path)
    assert len(read_jsonl(tmp_path / "entities.jsonl")) == len(world.entities)
    assert read_jsonl(tmp_path / "chat_train.jsonl") == world.chats
    assert read_jsonl(tmp_path / "chat_drill.jsonl") == world.drill_chats
    assert (tmp_path / "world.json").exists()


def test_scales_to_large_worlds():
    w = build_world(WorldConfig(entities=20000, docs_per_entity=1, qa_per_entity=1, unknown_names=0.2,
                                premise_per_entity=0.1))
    assert len(w.entities) == 20000
    assert len({e.name for e in w.entities}) == 20000


def test_bad_config_is_a_clear_error():
    with pytest.raises(ColossusError, match="at least 20"):
        WorldConfig(entities=3)


def test_recombined_names_are_new_combinations_of_known_words(world):
    known = {e.name for e in world.entities}
    words = {w for n in known for w in n.split()}
    recombined = [u for u in world.unknown if u.split == "test_recombined"]
    assert recombined
    for u in recombined:
        assert u.name not in known and all(w in words for w in u.name.split())
    assert any(it["kind"] == "recombined" for it in world.eval["test"])


def test_a_share_of_reading_chats_asks_before_the_note():
    base = WorldConfig(entities=60, docs_per_entity=2, qa_per_entity=2, readers=1.0, eval_known=10, eval_unknown=10,
                       eval_premise=8)
    plain, first = build_world(base), build_world(WorldConfig(**{**base.__dict__, "reading_question_first": 0.5}))
    assert first.eval == plain.eval and first.documents == plain.documents
    questions = {}  # every question a reader can be asked -> the reader
    for c in first.chats:
        if c["kind"] == "reading":
            (name,) = c["names"]
            questions.update({schema.render(q, name, ""): name for attr in schema.ATTRIBUTES for q in attr.questions})
    reading = [c["messages"][-2:] for c in first.chats if c["kind"] == "reading"]
    asked_first = 0
    for user, reply in reading:
        opening = user["content"].split("?")[0] + "?"
        if opening not in questions:  # the note first, as before
            continue
        asked_first += 1
        name = questions[opening]
        note = user["content"][len(opening):]
        assert name in note and len(note) > len(opening)  # the note after the question, and the answer from it
        value = reply["content"].removeprefix(name)
        assert reply["content"].startswith(name) and value.strip(" .").split()[-1] in note
    assert 0.35 < asked_first / len(reading) < 0.65
    with pytest.raises(ColossusError, match="reading_question_first is a share"):
        WorldConfig(reading_question_first=1.5)
