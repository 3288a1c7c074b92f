"""`colossus feed check ID|TEXT`: fact-check a post of the feed, or a claim, with a model in this process.

    colossus feed check 1870 --model runs/latest            # a post of the feed (its id)
    colossus feed check "Pella Vorn works at Kelm Farms."    # a claim: anything that is no post id of the feed
    colossus feed check 1870 --note --json                   # write the note on a post found false; as JSON

It prints the FEVER label and the one-sentence explanation, then the evidence as footnotes: the same check as
POST /v1/factcheck and the chat's fact_check tool (colossus.assistant.factcheck)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from colossus.errors import ColossusError

PERMALINK = "/posts/{}"  # without a server, a permalink is the path the web app serves


def add_parser(fs, common) -> None:
    c = fs.add_parser("check", parents=[common], help="fact-check a post or a claim: a FEVER label and evidence",
                      description=__doc__)
    c.add_argument("target", help="a post id of the feed, or the text of a claim")
    c.add_argument("--model", type=Path, default=Path("runs/latest"), help="model or run directory (runs/latest)")
    c.add_argument("--note", action="store_true", help="write a community note on a post found false")
    c.add_argument("--json", action="store_true", help="the verdict as JSON, as POST /v1/factcheck answers")
    c.set_defaults(func=cmd_check)


def cmd_check(a) -> int:
    from colossus.assistant.factcheck import fact_check, note_once
    from colossus.assistant.loop import Assistant
    from colossus.data.tokenizer import Tokenizer
    from colossus.feed.feed import Feed
    from colossus.infer.engine import Engine
    from colossus.infer.sampling import SamplingParams
    from colossus.model.io import TOKENIZER, load_model, resolve_model_dir

    if not a.target.strip():
        raise ColossusError("give a post id of the feed or the text of a claim to check")
    model_dir = resolve_model_dir(a.model)
    tok = Tokenizer.load(model_dir / TOKENIZER)
    feed = Feed(a.feed)
    engine = Engine(load_model(model_dir), tok, max_batch=2)
    engine.start()
    try:
        post = feed.get(a.target) if len(a.target) <= 64 else None
        assistant = Assistant(engine, tok, feed, permalink=PERMALINK.format)
        claim = None if post is not None else a.target
        v = asyncio.run(fact_check(assistant, SamplingParams(temperature=0), claim=claim, post=post))
        note = None
        if a.note and post is not None and v.label == "REFUTES" and v.evidence:
            note = note_once(feed, post.id, v.explanation, [s.url for s in v.evidence])
    finally:
        engine.shutdown()
        feed.close()
    if a.json:
        print(json.dumps({"post_id": post.id if post else None, "claim": post.text if post else a.target,
                          **v.to_dict(), "note": note}, ensure_ascii=False, indent=1))
        return 0
    print(f"{'post ' + post.id if post else 'claim'}: {post.text if post else a.target}")
    print(f"{v.label}: {v.explanation}")
    for s in v.evidence:
        print(f"  [{s.number}] @{s.post.author} {s.post.to_dict()['created_at']}: {s.post.text}  ({s.url})")
    if not v.evidence:
        print("  (no post of the feed cited)")
    if note is not None:
        print(f"note {note['noteId']} written on post {post.id}: {note['classification']}")
    return 0
