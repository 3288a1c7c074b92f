from collections import Counter

import pytest

from colossus.data import chat_template
from colossus.data.tokenizer import SPECIAL_TOKENS, StreamDecoder, Tokenizer
from colossus.errors import ColossusError


def test_roundtrip_text(tok):
    for text in ["Sitor Cotre was born in 1863.", "  leading spaces", "tabs\tand\nnewlines", "",
                 "unicode: héllo — 東京 🙂"]:
        assert tok.decode(tok.encode(text)) == text


def test_a_word_is_one_spelling_at_the_start_and_in_the_middle(tok, world):
    name = world.entities[0].name
    first = tok.encode(name)
    assert tok.encode(f"Ask {name}")[-len(first):] == first


def test_special_tokens_exist_and_are_not_reachable_from_text(tok):
    for t in SPECIAL_TOKENS:
        assert tok.special[t] is not None
    ids = tok.encode("<|assistant|> hi <|end|>")
    assert not set(ids) & set(tok.special.values())


def test_save_and_load(tmp_path, tok):
    tok.save(tmp_path / "tokenizer.json")
    again = Tokenizer.load(tmp_path)
    assert again.encode("Where was it?") == tok.encode("Where was it?")


def test_corrupt_or_missing_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(ColossusError, match="no tokenizer"):
        Tokenizer.load(tmp_path / "nope.json")
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ColossusError, match="corrupt"):
        Tokenizer.load(tmp_path / "tokenizer.json")


def test_conversation_roundtrip_is_lossless(tok):
    convo = [{"role": "system", "content": "Be brief."},
             {"role": "user", "content": "Who is <|user|> Kel?  "},
             {"role": "assistant", "content": "I don't know who Kel is."},
             {"role": "tool_call", "content": '{"name": "search", "query": "Kel"}'},
             {"role": "tool", "content": "no results"},
             {"role": "assistant", "content": ""}]
    ids, mask = chat_template.render(tok, convo)
    assert chat_template.parse(tok, ids) == convo
    assert len(ids) == len(mask)


def test_mask_covers_only_what_the_model_writes(tok):
    convo = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]
    ids, mask = chat_template.render(tok, convo)
    trained = [i for i, m in zip(ids, mask, strict=True) if m]
    assert tok.decode(trained) == "Hello there"
    assert trained[-1] == tok.end
    assert ids[mask.index(1) - 1] == tok.special["<|assistant|>"]


def test_prompt_ends_by_opening_the_assistant_turn(tok):
    ids = chat_template.render_prompt(tok, [{"role": "user", "content": "Hi"}])
    assert ids[0] == tok.bos and ids[-1] == tok.special["<|assistant|>"]


def test_bad_messages_are_rejected(tok):
    with pytest.raises(ColossusError):
        chat_template.render(tok, [{"role": "wizard", "content": "x"}])
    with pytest.raises(ColossusError):
        chat_template.render(tok, [{"role": "user", "content": 3}])
    with pytest.raises(ColossusError):
        chat_template.parse(tok, [tok.bos, tok.special["<|user|>"]] + tok.encode("cut"))


def test_stream_decoder_never_emits_half_a_character(tok):
    text = "héllo 東京 🙂 and more text " * 6
    ids = tok.encode(text)
    dec = StreamDecoder(tok)
    pieces = [dec.push(i) for i in ids] + [dec.flush()]
    assert "".join(pieces) == text
    assert not any("\ufffd" in p for p in pieces)


def test_emphasis_weighs_the_deciding_token(tok):
    reply = "Kel Dor works as a tailor. The premise of your question is false."
    at = reply.index(". The")
    convo = [{"role": "user", "content": "Kel Dor works as a baker, right?"},
             {"role": "assistant", "content": reply, "emphasis": at}]
    ids, weights = chat_template.render(tok, convo)
    heavy = [i for i, w in zip(ids, weights, strict=True) if w == chat_template.EMPHASIS]
    assert len(heavy) == 1 and tok.decode(heavy).strip() == "."
    assert chat_template.parse(tok, ids) == [{k: v for k, v in m.items() if k != "emphasis"} for m in convo]
    convo[-1]["emphasis"] = [0, at]  # several: each weighs as much
    ids, weights = chat_template.render(tok, convo)
    heavy = [i for i, w in zip(ids, weights, strict=True) if w == chat_template.EMPHASIS]
    first = weights.index(chat_template.EMPHASIS)  # the reply's first token, then the "."
    assert len(heavy) == 2 and ids[first] == heavy[0] and weights[first - 1] == 0
    assert tok.decode(heavy[1:]).strip() == "."


def test_a_tool_call_is_an_assistant_turn_whose_first_trained_token_says_so(tok):
    convo = [{"role": "user", "content": "Any news on Kel?"},
             {"role": "tool_call", "content": '{"name": "search", "arguments": {"query": "Kel"}}'},
             {"role": "tool", "content": "[1] @kel 2026-11-30: Kel moved."},
             {"role": "assistant", "content": "Kel moved [1]."}]
    ids, weights = chat_template.render(tok, convo)
    a, call = tok.special["<|assistant|>"], tok.special["<|tool_call|>"]
    at = ids.index(call)
    assert ids[at - 1] == a and (weights[at - 1], weights[at]) == (0, 1)  # the model chooses to call
    # a prompt always ends with <|assistant|>: what follows is the model's choice, answer or call
    prompt = chat_template.render_prompt(tok, convo[:1])
    assert prompt[-1] == a and ids[:len(prompt)] == prompt
    assert chat_template.render_prompt(tok, convo[:3]) == ids[:ids.index(a, at + 1) + 1]


def test_whole_words_keep_known_names_one_token_and_open_unseen_ones_with_a_token_the_corpus_holds(world, world_texts):
    texts = world_texts
    plain, whole = Tokenizer.train(texts, vocab_size=1024), Tokenizer.train(texts, vocab_size=1024, whole_words=5)
    for tok in (plain, whole):
        assert all(len(tok.encode(w)) == 1 for e in world.entities for w in e.name.split())
    held = {t: Counter(i for text in texts for i in t.encode(text)) for t in (plain, whole)}

    def never_held(tok: Tokenizer) -> list[str]:  # unseen names whose first token the corpus never holds
        return [u.name for u in world.unknown if held[tok][tok.encode(u.name)[0]] == 0]

    assert never_held(plain) and not never_held(whole)  # plain BPE: a half-built merge of some known word
    space = whole.hf.token_to_id("\u0120")
    spelled = [whole.encode(w) for u in world.unknown for w in u.name.split()]
    assert {ids[0] for ids in spelled if len(ids) > 1} == {space}  # a word not held whole opens with the bare space
    name = world.unknown[0].name
    assert whole.decode(whole.encode(f"{name}'s hobby")) == f"{name}'s hobby"
    word = world.entities[0].name.split()[0]
    assert whole.encode(f"{word}'s")[0] == whole.encode(word)[0]  # the possessive leaves the word whole
    assert sorted(whole.hf.get_vocab().values()) == list(range(whole.vocab_size))  # no gap for the embedding


def test_too_many_whole_words_for_the_vocabulary_is_a_clear_error(world_texts):
    with pytest.raises(ColossusError, match="raise data.vocab_size or data.whole_word_min"):
        Tokenizer.train(world_texts, vocab_size=300, whole_words=2)
