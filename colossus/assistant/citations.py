"""Inline citations: the markers [n] a model writes, checked against the posts the loop really retrieved
for this answer, renumbered in order of first use, and turned into the API's citations and annotations.

    sources = Sources(permalink=lambda pid: f"https://host/posts/{pid}")
    n = sources.add(post)                        # the number the model reads in the tool result: [n]
    writer = CitationWriter(sources)
    text = writer.feed("Pella Vorn works at Ostra Labs [3].") + writer.finish()
    writer.citations, writer.annotations, writer.bad

A marker whose number is no retrieved post is dropped (with the space before it) and counted in `bad`.
The writer streams: text is held back only from a "[" until it is known to be a marker or not, and a run
of spaces until what follows it is known, so offsets are final as soon as text is written. The offsets are
characters of the answer's content, as OpenAI's url_citation gives them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from colossus.feed.post import Post

TITLE = 80  # characters of a citation's title


@dataclass
class Source:
    number: int  # as the model read it in the tool result
    post: Post
    url: str

    @property
    def title(self) -> str:
        text = " ".join(self.post.text.split())
        head = f"@{self.post.author}: {text}"
        return head if len(head) <= TITLE else head[:TITLE - 1].rstrip() + "…"


class Sources:
    """The posts retrieved for one answer, numbered from 1 in the order first retrieved."""

    def __init__(self, permalink: Callable[[str], str]):
        self.permalink = permalink
        self.by_number: dict[int, Source] = {}
        self.by_id: dict[str, Source] = {}

    def add(self, post: Post) -> Source:
        if post.id not in self.by_id:
            s = Source(len(self.by_number) + 1, post, self.permalink(post.id))
            self.by_number[s.number] = s
            self.by_id[post.id] = s
        return self.by_id[post.id]

    def __len__(self) -> int:
        return len(self.by_number)


@dataclass
class Annotation:
    start: int
    end: int
    source: Source

    def to_dict(self) -> dict:
        return {"type": "url_citation", "url_citation": {"start_index": self.start, "end_index": self.end,
                                                         "url": self.source.url, "title": self.source.title}}


@dataclass
class CitationWriter:
    sources: Sources
    written: int = 0  # characters of content written so far
    cited: list[Source] = field(default_factory=list)  # in order of first use
    annotations: list[Annotation] = field(default_factory=list)
    bad: int = 0  # markers that named no retrieved post
    _held: str = ""  # a run of spaces, then perhaps the start of a marker
    _dropped: bool = False  # the last thing seen was a dropped marker

    @property
    def citations(self) -> list[str]:
        return [s.url for s in self.cited]

    def feed(self, text: str) -> str:
        out = []
        for ch in text:
            out.append(self._char(ch))
        return "".join(out)

    def finish(self) -> str:
        held, self._held = self._held, ""
        if held.lstrip(" ").startswith("["):  # an unfinished "[...": plain text
            return self._emit(held)
        return "" if self._dropped else self._emit(held)

    def _emit(self, s: str) -> str:
        self.written += len(s)
        return s

    def _char(self, ch: str) -> str:
        held = self._held
        bracket = held.lstrip(" ")
        if bracket.startswith("["):
            if ch.isdigit() and len(bracket) <= 3:
                self._held += ch
                return ""
            if ch == "]" and len(bracket) > 1:
                self._held = ""
                return self._marker(held[:len(held) - len(bracket)], int(bracket[1:]))
            self._held = ""  # not a marker after all
            return self._emit(held) + self._char(ch)
        if ch == " ":
            if not (self._dropped and held):  # "Ostra [9] and" -> "Ostra and", one space
                self._held += ch
            return ""
        if ch == "[":
            self._held += ch
            return ""
        self._held = ""
        if self._dropped and (not ch.isalnum() and ch not in "([{\"'"):
            held = ""  # "Ostra [9]." -> "Ostra."
        self._dropped = False
        return self._emit(held + ch)

    def _marker(self, spaces: str, number: int) -> str:
        source = self.sources.by_number.get(number)
        if source is None:
            self.bad += 1
            self._dropped = True
            self._held = spaces  # what follows decides whether the space stays
            return ""
        self._dropped = False
        if source not in self.cited:
            self.cited.append(source)
        marker = f"[{self.cited.index(source) + 1}]"
        lead = self._emit(spaces)
        start = self.written
        self.annotations.append(Annotation(start, start + len(marker), source))
        return lead + self._emit(marker)
