"""The feed's ingest rate and search latency against bm25s and SQLite FTS5, on the same posts and queries,
in one run.

    PYTHONPATH=. python benchmarks/feed.py [--sizes 10000 100000 1000000] [--queries 1000] [--out F.json]
        [--plot F.png]

Posts: 8-40 words each, drawn from a Zipf-distributed vocabulary of 50,000 made-up words (seeded), by 1,000
authors over 30 days. Queries: 3 words of a random post (so that most have matches), the same ones for every
engine. For each corpus size:
- ours, batch ingest: Feed.ingest in batches of 10,000 (stored in SQLite and indexed by tantivy, both
  committed before each call returns), posts/s over the whole corpus;
- ours, one post: Feed.ingest of a single post, then the first search for its words: the time of the ingest
  call, and whether that search returned the post;
- ours, search: Feed.search (BM25 top 10, the posts read back from the store), p50 and p99;
- bm25s: its index built in memory over the same texts (posts/s), then retrieve top 10 (p50, p99);
- SQLite FTS5: rows inserted in one transaction (posts/s), then MATCH ... ORDER BY rank LIMIT 10 (p50, p99);
- ours, on disk: the bytes of the store (feed.db and its WAL) and of the index.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from colossus.feed.feed import Feed  # noqa: E402
from colossus.feed.post import Post  # noqa: E402
from colossus.train.device import cpu_model  # noqa: E402

VOCAB, AUTHORS, BATCH = 50_000, 1_000, 10_000
START = 1_764_547_200  # 2025-12-01T00:00:00Z


def vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < VOCAB:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words)


def corpus(n: int, seed: int = 0) -> list[dict]:
    """n posts as dicts (the feed's JSON), deterministic in seed."""
    rng = random.Random(seed)
    words = vocabulary(rng)
    # Zipf: the r-th word is 1/r as frequent as the first (cumulated once: choices() would redo it every call)
    cum = list(itertools.accumulate(1 / (r + 1) for r in range(VOCAB)))
    out = []
    for i in range(n):
        k = rng.randint(8, 40)
        text = " ".join(rng.choices(words, cum_weights=cum, k=k))
        t = START + rng.randrange(30 * 86_400)
        out.append({"id": str(i), "author": f"user{rng.randrange(AUTHORS)}",
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)), "text": text})
    return out


def queries(posts: list[dict], n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(rng.choice(posts)["text"].split(), 3)) for _ in range(n)]


def percentiles(seconds: list[float]) -> tuple[float, float]:
    s = sorted(seconds)
    return statistics.median(s) * 1e3, s[min(len(s) - 1, int(0.99 * len(s)))] * 1e3


def timed_each(fn, qs: list[str]) -> list[float]:
    out = []
    for q in qs:
        t = time.perf_counter()
        fn(q)
        out.append(time.perf_counter() - t)
    return out


def bench_ours(posts: list[dict], qs: list[str], root: Path) -> dict:
    parsed = [Post.from_dict(p) for p in posts]
    feed = Feed(root)
    try:
        t = time.perf_counter()
        for i in range(0, len(parsed), BATCH):
            feed.ingest(parsed[i:i + BATCH])
        rate = len(parsed) / (time.perf_counter() - t)
        one = Post.from_dict({"id": "single", "author": "late", "created_at": "2026-01-01T00:00:00Z",
                              "text": "zzqx unheard vorpal word"})
        t = time.perf_counter()
        feed.ingest([one])
        single_ms = (time.perf_counter() - t) * 1e3
        found = [p.id for p, _ in feed.search("zzqx vorpal")] == ["single"]
        lat = timed_each(lambda q: feed.search(q, limit=10), qs)
    finally:
        feed.close()
    p50, p99 = percentiles(lat)
    disk = {part: sum(f.stat().st_size for f in (root / part).rglob("*") if f.is_file()) if (root / part).is_dir()
            else sum(f.stat().st_size for f in root.glob(part + "*")) for part in ("feed.db", "index")}
    return {"ingest_per_s": rate, "single_ingest_ms": single_ms, "single_found": found, "p50_ms": p50,
            "p99_ms": p99, "store_bytes": disk["feed.db"], "index_bytes": disk["index"]}


def bench_bm25s(posts: list[dict], qs: list[str]) -> dict:
    import bm25s

    texts = [p["text"] for p in posts]
    t = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords=None, show_progress=False), show_progress=False)
    rate = len(texts) / (time.perf_counter() - t)

    def search(q: str) -> None:
        retriever.retrieve(bm25s.tokenize([q], stopwords=None, show_progress=False), k=10, show_progress=False)

    p50, p99 = percentiles(timed_each(search, qs))
    return {"ingest_per_s": rate, "p50_ms": p50, "p99_ms": p99}


def bench_fts5(posts: list[dict], qs: list[str], path: Path) -> dict:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE VIRTUAL TABLE posts USING fts5(id UNINDEXED, author UNINDEXED, text)")
    t = time.perf_counter()
    db.execute("BEGIN")
    db.executemany("INSERT INTO posts VALUES (?, ?, ?)", ((p["id"], p["author"], p["text"]) for p in posts))
    db.execute("COMMIT")
    rate = len(posts) / (time.perf_counter() - t)

    def search(q: str) -> None:
        db.execute("SELECT id FROM posts WHERE posts MATCH ? ORDER BY rank LIMIT 10",
                   (" OR ".join(q.split()),)).fetchall()

    p50, p99 = percentiles(timed_each(search, qs))
    db.close()
    return {"ingest_per_s": rate, "p50_ms": p50, "p99_ms": p99}


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for engine, style, color in (("colossus (tantivy)", "o-", "C0"), ("bm25s", "s--", "C1"),
                                 ("SQLite FTS5", "^:", "C2")):
        rs = [r for r in rows if r["engine"] == engine]
        sizes = [r["posts"] for r in rs]
        ax[0].plot(sizes, [r["p99_ms"] for r in rs], style, color=color, label=f"{engine} p99")
        ax[0].plot(sizes, [r["p50_ms"] for r in rs], style, color=color, alpha=0.35, label=f"{engine} p50")
        ax[1].plot(sizes, [r["ingest_per_s"] for r in rs], style, color=color, label=engine)
    for a, label in ((ax[0], "search latency, ms (log)"), (ax[1], "ingest, posts/s (log)")):
        a.set_xscale("log"), a.set_yscale("log"), a.set_xlabel("posts in the feed"), a.set_ylabel(label)
        a.grid(alpha=0.3), a.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot -> {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--skip-peers", action="store_true", help="ours only")
    p.add_argument("--out", type=Path)
    p.add_argument("--plot", type=Path)
    a = p.parse_args()
    title = (f"feed: {cpu_model()}; 8-40-word posts, 3-word queries, top 10; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(title, flush=True)
    rows = []
    for n in a.sizes:
        posts = corpus(n)
        qs = queries(posts, a.queries)
        with tempfile.TemporaryDirectory() as tmp:
            ours = bench_ours(posts, qs, Path(tmp) / "feed")
            rows.append({"engine": "colossus (tantivy)", "posts": n, **ours})
            if not a.skip_peers:
                rows.append({"engine": "bm25s", "posts": n, **bench_bm25s(posts, qs)})
                rows.append({"engine": "SQLite FTS5", "posts": n, **bench_fts5(posts, qs, Path(tmp) / "fts.db")})
        for r in rows[-3:] if not a.skip_peers else rows[-1:]:
            print(f"  {n:>9,} posts  {r['engine']:<20} ingest {r['ingest_per_s']:>10,.0f} posts/s  "
                  f"search p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms", flush=True)
    print("\n| posts | engine | ingest posts/s | search p50 ms | search p99 ms | one post: ingest ms, then found "
          "| on disk: store, index MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ours = "single_found" in r
        single = f"{r['single_ingest_ms']:.1f}, {'yes' if r['single_found'] else 'NO'}" if ours else ""
        disk = f"{r['store_bytes'] / 1e6:.1f}, {r['index_bytes'] / 1e6:.1f}" if ours else ""
        print(f"| {r['posts']:,} | {r['engine']} | {r['ingest_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
              f"| {single} | {disk} |")
    if a.out:
        a.out.write_text(json.dumps({"title": title, "queries": a.queries, "rows": rows}, indent=1) + "\n")
        print(f"results -> {a.out}")
    if a.plot:
        plot(rows, a.plot, title)


if __name__ == "__main__":
    main()
