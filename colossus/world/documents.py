"""Documents: each states all of one entity's facts, in a random wording and a random order.

Varied restatement is what lets a model answer questions about facts it has only read."""

from __future__ import annotations

import random

from colossus.world import schema
from colossus.world.entities import Entity, Unknown


def document(rng: random.Random, e: Entity, attrs: list[str] | None = None) -> str:
    """All of e's facts (or those named in attrs), each in a random wording, in a random order."""
    sentences = []
    for attr in schema.BY_KIND[e.kind]:
        if attrs is None or attr.name in attrs:
            sentences.append(schema.render(rng.choice(attr.statements), e.name, e.attrs[attr.name]))
    rng.shuffle(sentences)
    return " ".join(sentences)


def build_documents(seed: int, entities: list[Entity], per_entity: int, stream: str = "docs") -> list[dict]:
    rng = random.Random(f"{seed}/{stream}")
    docs = [{"id": f"{e.id}/{stream}-{j}", "entity": e.id, "text": document(rng, e)}
            for j in range(per_entity) for e in entities]
    rng.shuffle(docs)
    return docs


def build_no_record_documents(seed: int, names: list[Unknown]) -> list[dict]:
    """One short document per name, saying it appears in no record."""
    rng = random.Random(f"{seed}/no-record")
    return [{"id": f"no-record-{i}", "entity": None, "text": rng.choice(schema.NO_RECORD).format(name=u.name)}
            for i, u in enumerate(names)]
