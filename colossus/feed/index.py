"""The feed's search index: BM25 over the posts' text, filtered by time and author, behind a small
interface (SearchIndex) that one node fills with tantivy (TantivyIndex) and that a deployment too large
for one node fills with a distributed engine built on the same idea (Quickwit, OpenSearch).

The index holds no post: a hit is a post id and its score; the store (colossus.feed.store) has the
post. It records the number of the last store change it holds (`watermark`, written after each commit),
and catch_up(store) replays the store's changes after it: adds are upserts (the id's old document goes
first), so a replay after a crash between the index's commit and its watermark changes nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import tantivy

from colossus.feed.post import MAX_LIMIT, MAX_QUERY, FeedError, Post
from colossus.feed.store import FeedStore

MAX_TERMS = 32  # words of a query that count
WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Hit:
    id: str
    score: float


def query_terms(query: str) -> list[str]:
    """The words of a user's query, lowercased (punctuation and operators are not syntax here), or FeedError."""
    if not isinstance(query, str) or not query.strip():
        raise FeedError("the query is empty")
    if len(query) > MAX_QUERY:
        raise FeedError(f"the query has {len(query)} characters, more than {MAX_QUERY}")
    terms = [w.lower() for w in WORD.findall(query)][:MAX_TERMS]
    if not terms:
        raise FeedError("the query has no words to search for")
    return terms


class SearchIndex(Protocol):
    watermark: int  # the last store change the index holds

    def add(self, posts: Sequence[Post]) -> None: ...  # upserts, by id
    def delete(self, ids: Sequence[str]) -> None: ...
    def commit(self, watermark: int) -> None: ...  # what was added is searchable and durable, up to this change
    def clear(self) -> None: ...
    def close(self) -> None: ...

    def search(self, query: str, since: dt.datetime | None = None, until: dt.datetime | None = None,
               authors: Sequence[str] | None = None, exclude_authors: Sequence[str] | None = None,
               limit: int = 10) -> list[Hit]: ...


def catch_up(index: SearchIndex, store: FeedStore) -> int:
    """Replay the store's changes after the index's watermark -> how many were replayed."""
    n, last, adds = 0, index.watermark, []
    for seq, op, what in store.changes(index.watermark):
        if op == "add":
            adds.append(what)
        else:
            if adds:
                index.add(adds)
                adds = []
            index.delete([what])
        n, last = n + 1, seq
        if len(adds) >= 10_000:
            index.add(adds)
            adds = []
    if adds:
        index.add(adds)
    if n:
        index.commit(last)
    return n


class TantivyIndex:
    """SearchIndex on a tantivy index in a directory (its own files, and watermark.json)."""

    HEAP = 64 * 2**20  # bytes the writer buffers before it flushes a segment

    def __init__(self, path: Path):
        self.path = Path(path).expanduser()
        self.path.mkdir(parents=True, exist_ok=True)
        sb = tantivy.SchemaBuilder()
        sb.add_text_field("id", stored=True, tokenizer_name="raw")
        sb.add_text_field("author", stored=False, tokenizer_name="raw")
        sb.add_integer_field("ts", stored=False, indexed=True, fast=True)
        sb.add_text_field("text", stored=False)
        self.schema = sb.build()
        fresh = not (self.path / "meta.json").exists()
        self.index = tantivy.Index(self.schema, path=str(self.path), reuse=not fresh)
        self.writer = self.index.writer(heap_size=self.HEAP, num_threads=1)
        mark = self.path / "watermark.json"
        self.watermark = 0 if fresh or not mark.exists() else int(json.loads(mark.read_text())["watermark"])

    def clear(self) -> None:
        """Drop every document (the watermark goes back to 0): the index of another store."""
        self.writer.delete_all_documents()
        self.commit(0)

    def close(self) -> None:
        """Let the writer finish its merges and release the index's lock (a killed process releases it too)."""
        if self.writer is not None:
            self.writer.wait_merging_threads()
            self.writer = None

    def add(self, posts: Sequence[Post]) -> None:
        for p in posts:
            self.writer.delete_documents_by_term("id", p.id)
            self.writer.add_document(tantivy.Document(id=p.id, author=p.author.lower(), ts=p.ts, text=p.text))

    def delete(self, ids: Sequence[str]) -> None:
        for i in ids:
            self.writer.delete_documents_by_term("id", i)

    def commit(self, watermark: int) -> None:
        self.writer.commit()
        self.index.reload()
        part = self.path / "watermark.json.part"
        with open(part, "w") as f:
            json.dump({"watermark": watermark}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, self.path / "watermark.json")
        self.watermark = watermark

    def search(self, query: str, since: dt.datetime | None = None, until: dt.datetime | None = None,
               authors: Sequence[str] | None = None, exclude_authors: Sequence[str] | None = None,
               limit: int = 10) -> list[Hit]:
        if not 1 <= limit <= MAX_LIMIT:
            raise FeedError(f"limit must be in 1..{MAX_LIMIT}, not {limit}")
        terms = query_terms(query)
        filters = []
        if since is not None or until is not None:
            filters.append((tantivy.Occur.Must, tantivy.Query.range_query(
                self.schema, "ts", tantivy.FieldType.Integer, int(since.timestamp()) if since else None,
                int(until.timestamp()) if until else None)))
        if authors:
            filters.append((tantivy.Occur.Must, tantivy.Query.term_set_query(self.schema, "author",
                                                                             [a.lower() for a in authors])))
        if exclude_authors:
            filters.append((tantivy.Occur.MustNot, tantivy.Query.term_set_query(
                self.schema, "author", [a.lower() for a in exclude_authors])))
        searcher = self.index.searcher()

        def top(words: str):
            text = (tantivy.Occur.Must, self.index.parse_query(words, ["text"]))
            return searcher.search(tantivy.Query.boolean_query([text, *filters]), limit)

        result = top(" ".join(f"+{t}" for t in terms))  # the posts holding every word
        if not result.hits and len(terms) > 1:  # none does: those holding any
            result = top(" ".join(terms))
        return [Hit(searcher.doc(addr)["id"][0], score) for score, addr in result.hits]
