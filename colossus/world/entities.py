"""Entities with their facts, split into train / val / test, and unknown names that exist nowhere."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from colossus.world import schema
from colossus.world.names import ORG_SUFFIXES, PLACE_KINDS, NameForge, combine

SPLITS = ("train", "val", "test")


@dataclass
class Entity:
    id: str
    kind: str
    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    split: str = "train"
    """train: its Q&A is trained on; val/test: its Q&A never is (its facts are only in documents);
    reading: invented for notes pasted into chats, in no document."""

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "name": self.name, "attrs": self.attrs, "split": self.split}


@dataclass
class Unknown:
    """A name that no document mentions: the right answer to any question about it is 'I don't know'."""

    kind: str
    name: str
    split: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "split": self.split}


def round_sig(x: int, digits: int = 2) -> str:
    """48213 -> '48,000': numbers a reader would state."""
    n = len(str(x)) - digits
    return f"{round(x, -n) if n > 0 else x:,}"


def kind_counts(n_entities: int) -> dict[str, int]:
    people = max(3, round(n_entities * 0.6))
    places = max(2, round(n_entities * 0.2))
    return {"person": people, "place": places, "org": max(2, n_entities - people - places)}


def name_pools(forge: NameForge, needed: dict[str, int]) -> dict[str, tuple[list[str], list[str]]]:
    """Word pools per kind with room for 3x the names needed, so unknown names stay easy to find."""
    p = needed["person"] * 3
    first = forge.pool(max(6, int((p / 2) ** 0.5)), (1, 2))
    last = forge.pool(max(8, int((p * 2) ** 0.5)) + 1, (2, 2))
    place_roots = forge.pool(max(4, needed["place"] * 3 // len(PLACE_KINDS) + 1), (2, 3))
    org_roots = forge.pool(max(4, needed["org"] * 3 // len(ORG_SUFFIXES) + 1), (2, 3))
    return {"person": (first, last), "place": (place_roots, PLACE_KINDS), "org": (org_roots, ORG_SUFFIXES)}


def assign_splits(rng: random.Random, items: list, val_frac: float, test_frac: float) -> None:
    order = list(range(len(items)))
    rng.shuffle(order)
    n_test = max(1, round(len(items) * test_frac))
    n_val = max(1, round(len(items) * val_frac))
    for rank, i in enumerate(order):
        items[i].split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"


def facts(rng: random.Random, kind: str, places: list[str], orgs: list[str], people: list[str]) -> dict[str, str]:
    """Random facts for an entity of this kind; entity-valued facts point at the given names."""
    if kind == "person":
        return {"birthplace": rng.choice(places), "birth_year": str(rng.randint(1850, 2005)),
                "occupation": rng.choice(schema.OCCUPATIONS), "employer": rng.choice(orgs),
                "instrument": rng.choice(schema.INSTRUMENTS), "hobby": rng.choice(schema.HOBBIES)}
    if kind == "place":
        return {"country": rng.choice(schema.COUNTRIES), "population": round_sig(rng.randint(800, 2_000_000)),
                "settled": str(rng.randint(800, 1900)), "river": rng.choice(schema.RIVERS),
                "landmark": rng.choice(schema.LANDMARKS), "climate": rng.choice(schema.CLIMATES)}
    return {"founded": str(rng.randint(1800, 2020)), "headquarters": rng.choice(places),
            "founder": rng.choice(people), "industry": rng.choice(schema.INDUSTRIES),
            "employees": round_sig(rng.randint(12, 90_000)), "product": rng.choice(schema.PRODUCTS)}


def build_entities(seed: int, n_entities: int, val_frac: float, test_frac: float, n_unknown: dict[str, int],
                   n_readers: int = 0) -> tuple[list[Entity], list[Unknown], list[Entity]]:
    """Entities (each kind split on its own into train / val / test); n_unknown[split] unknown names
    per split; and n_readers invented entities that exist only in notes pasted into chats."""
    rng = random.Random(f"{seed}/entities")
    counts = kind_counts(n_entities)
    share = {k: counts[k] / n_entities for k in schema.KINDS}
    # unknown names and readers: the same words in new combinations, in proportion to the kinds
    n_unk = {(s, k): max(1, round(total * share[k])) for s, total in n_unknown.items() if total > 0
             for k in schema.KINDS}
    n_read = {k: round(n_readers * share[k]) for k in schema.KINDS}
    needed = {k: counts[k] + n_read[k] + sum(n for (_, kk), n in n_unk.items() if kk == k) for k in schema.KINDS}
    pools = name_pools(NameForge(rng), needed)
    taken: set[str] = set()
    names = {k: combine(rng, *pools[k], counts[k], taken) for k in schema.KINDS}
    unknown = [Unknown(k, nm, s) for (s, k), n in n_unk.items() for nm in combine(rng, *pools[k], n, taken)]
    values = (names["place"], names["org"], names["person"])
    entities = [Entity(f"{k}-{i:06d}", k, nm, facts(rng, k, *values))
                for k in schema.KINDS for i, nm in enumerate(names[k])]
    for k in schema.KINDS:  # split each kind on its own, so every split holds every kind
        assign_splits(rng, [e for e in entities if e.kind == k], val_frac, test_frac)
    readers = [Entity(f"reader-{k}-{i:06d}", k, nm, facts(rng, k, *values), split="reading")
               for k in schema.KINDS for i, nm in enumerate(combine(rng, *pools[k], n_read[k], taken))]
    return entities, unknown, readers
