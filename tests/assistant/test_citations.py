import datetime as dt

import pytest

from colossus.assistant.citations import TITLE, CitationWriter, Sources
from colossus.feed.post import Post


def post(pid: str, text: str = "Pella Vorn joined Ostra Labs today.") -> Post:
    return Post(pid, "ostra_news", dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc), text)


def sources(n: int) -> Sources:
    s = Sources(permalink=lambda pid: f"http://h/posts/{pid}")
    for i in range(1, n + 1):
        assert s.add(post(f"p{i}")).number == i
    return s


def write(text: str, srcs: Sources, pieces: list[int] | None = None) -> tuple[str, CitationWriter]:
    w = CitationWriter(srcs)
    if pieces is None:
        return w.feed(text) + w.finish(), w
    out, at = [], 0
    for n in pieces:
        out.append(w.feed(text[at:at + n]))
        at += n
    return "".join(out) + w.feed(text[at:]) + w.finish(), w


def test_markers_are_renumbered_in_order_of_first_use():
    text, w = write("Ostra Labs [3] hired Pella Vorn [1], as [3] says.", sources(3))
    assert text == "Ostra Labs [1] hired Pella Vorn [2], as [1] says."
    assert w.citations == ["http://h/posts/p3", "http://h/posts/p1"]
    assert [text[a.start:a.end] for a in w.annotations] == ["[1]", "[2]", "[1]"]
    assert [a.source.post.id for a in w.annotations] == ["p3", "p1", "p3"]
    assert w.bad == 0


@pytest.mark.parametrize(("raw", "clean"), [
    ("Pella Vorn works at Ostra [7].", "Pella Vorn works at Ostra."),
    ("Ostra [7] hired her [1].", "Ostra hired her [1]."),
    ("Ostra [9][1].", "Ostra [1]."),
    ("Ostra [1][9].", "Ostra [1]."),
    ("Ostra [0]", "Ostra"),
])
def test_a_marker_of_no_retrieved_post_is_dropped_and_counted(raw, clean):
    text, w = write(raw, sources(1))
    assert text == clean
    assert w.bad == 1
    assert [text[a.start:a.end] for a in w.annotations] == ["[1]"] * clean.count("[1]")


@pytest.mark.parametrize("raw", ["In [2026] it moved.", "a [b] c", "x [", "x [12", "list [1, 2]", "ends with  ",
                                 "a  b", "[ 1]"])
def test_text_that_is_no_marker_is_kept_as_written(raw):
    text, w = write(raw, sources(3))
    assert text == raw
    assert w.annotations == [] and w.bad == 0


def test_streamed_in_any_pieces_the_text_and_offsets_are_the_same():
    raw = "Pella Vorn [2] works at Ostra [5] Labs [1][2], since 2026 [x]."
    whole, w0 = write(raw, sources(2))
    for size in (1, 2, 3, 5, 8):
        text, w = write(raw, sources(2), [size] * (len(raw) // size))
        assert text == whole
        assert [(a.start, a.end, a.source.number) for a in w.annotations] == \
            [(a.start, a.end, a.source.number) for a in w0.annotations]
        assert w.written == len(text)


def test_a_post_retrieved_twice_keeps_its_number_and_titles_are_short():
    s = sources(2)
    again = s.add(post("p1"))
    assert again.number == 1 and len(s) == 2
    long = s.add(post("p3", "word " * 100))
    assert len(long.title) == TITLE and long.title.startswith("@ostra_news: word") and long.title.endswith("…")
