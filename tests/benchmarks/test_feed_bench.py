"""The feed benchmark runs at a small size, checks that a single ingested post is found by the next search,
and prints a row per engine."""

from __future__ import annotations

import json
import sys

import pytest

from benchmarks import feed


def test_the_corpus_and_queries_are_seeded():
    assert feed.corpus(50) == feed.corpus(50) and len({p["id"] for p in feed.corpus(50)}) == 50
    assert all(8 <= len(p["text"].split()) <= 40 for p in feed.corpus(200))
    assert feed.queries(feed.corpus(50), 5) == feed.queries(feed.corpus(50), 5)


def test_benchmark_prints_a_row_per_engine(monkeypatch, capsys, tmp_path):
    pytest.importorskip("bm25s", reason="bm25s is the benchmark's peer (pip install -e '.[bench]')")
    out, png = tmp_path / "feed.json", tmp_path / "feed.png"
    monkeypatch.setattr(sys, "argv", ["feed.py", "--sizes", "300", "--queries", "20", "--out", str(out),
                                      "--plot", str(png)])
    feed.main()
    rows = json.loads(out.read_text())["rows"]
    assert [r["engine"] for r in rows] == ["colossus (tantivy)", "bm25s", "SQLite FTS5"]
    assert rows[0]["single_found"] is True
    assert all(r["ingest_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"] for r in rows)
    assert rows[0]["store_bytes"] > 0 and rows[0]["index_bytes"] > 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 300 |")]
    assert len(table) == 3 and png.stat().st_size > 0
