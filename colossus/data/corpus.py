"""Corpus readers: the world's documents, or a user's own files.

    .txt      one document per file
    .jsonl    one document per line, in its "text" field
    .parquet  one document per row, in its "text" column (or another, named)

A directory is read recursively in sorted order, so the corpus is the same on every run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from colossus.errors import ColossusError

SUFFIXES = (".txt", ".jsonl", ".parquet")


def corpus_files(path: str | Path) -> list[Path]:
    path = Path(path)
    if not path.exists():
        raise ColossusError(f"corpus path {path} does not exist")
    if path.is_file():
        if path.suffix not in SUFFIXES:
            raise ColossusError(f"cannot read {path}: corpus files must be {', '.join(SUFFIXES)}")
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    if not files:
        raise ColossusError(f"no {', '.join(SUFFIXES)} files under {path}")
    return files


def read_txt(path: Path) -> Iterator[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ColossusError(f"cannot read {path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    if text.strip():
        yield text


def jsonl_rows(path: Path) -> Iterator[tuple[int, object]]:
    """(line number, parsed JSON) for each non-blank line; a line that is not JSON is a clear error."""
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    raise ColossusError(f"cannot read {path} line {n}: not JSON ({e.msg})") from e
    except UnicodeDecodeError as e:
        raise ColossusError(f"cannot read {path}: not UTF-8 ({e.reason})") from e


def read_jsonl(path: Path, field: str) -> Iterator[str]:
    for n, row in jsonl_rows(path):
        if not isinstance(row, dict) or not isinstance(row.get(field), str):
            raise ColossusError(f"cannot read {path} line {n}: no string field {field!r}")
        yield row[field]


def read_chats(path: str | Path) -> list[dict]:
    """Conversations from a .jsonl file, one per line: {"messages": [{"role": ..., "content": ...}, ...]} (the
    world's chats.jsonl, or a user's own)."""
    path = Path(path)
    if path.suffix != ".jsonl" or not path.is_file():
        raise ColossusError(f"{path}: conversations come in a .jsonl file, one {{\"messages\": [...]}} per line")
    chats = []
    for n, row in jsonl_rows(path):
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
            raise ColossusError(f"cannot read {path} line {n}: no list field 'messages'")
        chats.append(row)
    return chats


def read_parquet(path: Path, column: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... on a bad file
        raise ColossusError(f"cannot read {path}: not a parquet file ({e})") from e
    if column not in pf.schema_arrow.names:
        raise ColossusError(f"cannot read {path}: no column {column!r} (columns: {pf.schema_arrow.names})")
    for batch in pf.iter_batches(columns=[column], batch_size=4096):
        for text in batch.column(0).to_pylist():
            if isinstance(text, str) and text.strip():
                yield text


def read_corpus(path: str | Path, text_field: str = "text") -> Iterator[str]:
    """Every document under path, as text."""
    for f in corpus_files(path):
        try:
            if f.suffix == ".txt":
                yield from read_txt(f)
            elif f.suffix == ".jsonl":
                yield from read_jsonl(f, text_field)
            else:
                yield from read_parquet(f, text_field)
        except OSError as e:
            raise ColossusError(f"cannot read {f}: {e.strerror or e}") from e
