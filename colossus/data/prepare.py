"""From text to token shards: train the tokenizer, write pretraining and fine-tuning shards.

    colossus data tokenizer --corpus runs/x/world/documents.jsonl --out runs/x/tokenizer.json
    colossus data shards --corpus DIR_OR_FILE --tokenizer runs/x/tokenizer.json --out runs/x/data/pretrain
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from colossus.data import chat_template
from colossus.data.shards import write_documents, write_packed
from colossus.data.tokenizer import Tokenizer
from colossus.errors import ColossusError


def chat_texts(chats: Iterable[dict]) -> Iterator[str]:
    for c in chats:
        for m in c["messages"]:
            yield m["content"]


def train_tokenizer(texts: Iterable[str], out: Path, vocab_size: int, log=print, whole_words: int = 0) -> Tokenizer:
    t0 = time.time()
    tok = Tokenizer.train(texts, vocab_size=vocab_size, whole_words=whole_words)
    tok.save(out)
    log(f"tokenizer: {tok.vocab_size:,} tokens -> {out} ({time.time() - t0:.1f}s)")
    return tok


def batched(it: Iterable[str], n: int = 4096) -> Iterator[list[str]]:
    batch: list[str] = []
    for x in it:
        batch.append(x)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def pretrain_shards(texts: Iterable[str], tok: Tokenizer, out: Path, log=print) -> dict:
    t0 = time.time()

    def docs():
        for batch in batched(texts):
            yield from tok.encode_batch(batch)

    meta = write_documents(out, docs(), tok.vocab_size, tok.bos)
    log(f"shards: {meta['tokens']:,} tokens in {len(meta['shards'])} shard(s) -> {out} ({time.time() - t0:.1f}s)")
    return meta


def packed_shards(docs: list[str], chats: list[dict], tok: Tokenizer, out: Path, seq_len: int, seed: int,
                  log=print, label: str = "shards") -> dict:
    """Pack documents (loss on every token) and conversations (loss on the assistant's tokens only)
    into rows of seq_len + 1, in a seeded random order."""
    t0 = time.time()
    items: list[tuple[list[int], list[int], bool]] = []
    for c in chats:
        try:
            ids, mask = chat_template.render(tok, c["messages"])
        except (KeyError, TypeError) as e:
            raise ColossusError(f"bad conversation in chat data: {e}") from e
        items.append((ids, mask, False))
    for batch in batched(docs):
        for ids in tok.encode_batch(batch):
            items.append(([tok.bos] + ids, [0] + [1] * len(ids), True))
    random.Random(seed).shuffle(items)
    meta = write_packed(out, items, tok.vocab_size, row_len=seq_len + 1, pad_id=tok.pad)
    log(f"{label}: {len(docs):,} documents + {len(chats):,} conversations, {meta['tokens']:,} tokens "
        f"-> {out} ({time.time() - t0:.1f}s)")
    if meta["dropped_too_long"]:
        log(f"  note: {meta['dropped_too_long']} conversation(s) longer than {seq_len + 1} tokens were skipped")
    return meta
