import random

from colossus.infer.detokenize import TextStream, TokenTable
from colossus.infer.stop import StopMatcher


def feed_all(m: StopMatcher, pieces: list[str]) -> tuple[list[str], bool]:
    out, stopped = [], False
    for p in pieces:
        text, stopped = m.feed(p)
        out.append(text)
        if stopped:
            break
    return out, stopped


def test_text_that_may_start_a_stop_string_is_held_back_until_it_cannot():
    m = StopMatcher(("STOP",))
    assert m.feed("hello S") == ("hello ", False)  # "S" may start STOP
    assert m.feed("T") == ("", False)  # "ST" still may
    assert m.feed("ay") == ("STay", False)  # "STay" cannot: released at once
    assert m.flush() == ""


def test_stop_string_split_across_pieces_is_trimmed():
    out, stopped = feed_all(StopMatcher(("</answer>",)), ["The answer is 4", "</", "ans", "wer> and more"])
    assert stopped and "".join(out) == "The answer is 4"


def test_earliest_of_several_stop_strings_wins_and_nothing_after_it_is_released():
    m = StopMatcher(("world", "lo w"))
    assert m.feed("hello world") == ("hel", True)
    assert m.feed("more") == ("", True)
    assert m.flush() == ""


def test_held_back_text_is_released_when_the_stream_ends():
    m = StopMatcher(("###",))
    assert m.feed("a list:\n##") == ("a list:\n", False)
    assert m.flush() == "##"


def test_no_stop_strings_passes_text_through():
    m = StopMatcher(())
    assert m.feed("anything") == ("anything", False)


def test_random_splits_always_give_the_text_before_the_first_stop():
    rng = random.Random(0)
    text = "alpha beta <stop> gamma <end> delta"
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 10)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        m = StopMatcher(("<end>", "<stop>"))
        out, stopped = feed_all(m, pieces)
        assert stopped and "".join(out) == "alpha beta "


def test_text_stream_equals_tokenizer_decode_and_never_splits_a_character(tok):
    table = TokenTable(tok, tok.vocab_size)
    rng = random.Random(1)
    texts = ["plain words here", "ünïcödé – “quotes” 日本語 🙂", "x"]
    for text in texts:
        ids = tok.encode(text)
        ts = TextStream(table, ())
        pieces = [ts.push(i)[0] for i in ids]
        assert "".join(pieces) + ts.finish() == tok.decode(ids) == text
        assert all("\ufffd" not in p for p in pieces)
    for _ in range(50):  # random ids: lone bytes of multi-byte characters, special tokens
        ids = [rng.randrange(tok.vocab_size) for _ in range(30)]
        ts = TextStream(table, ())
        assert "".join(ts.push(i)[0] for i in ids) + ts.finish() == tok.decode(ids)


def test_token_table_shows_tokens_and_their_bytes(tok):
    table = TokenTable(tok, tok.vocab_size + 3)  # the model's vocabulary may be padded past the tokenizer's
    (i,) = tok.encode("x")[-1:]
    assert b"".join(bytes(table.shown[j][1]) for j in tok.encode("hello world")).decode() == " hello world"
    assert table.shown[tok.end] == ("<|end|>", list(b"<|end|>")) and table.text_bytes[tok.end] == b""
    assert table.shown[tok.vocab_size + 1] == ("", []) and table.text_bytes[i]
