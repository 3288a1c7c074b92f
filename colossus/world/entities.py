"""Entities with their facts, split into train / val / test, and unknown names that exist nowhere."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from colossus.world import schema
from colossus.world.names import Namer

SPLITS = ("train", "val", "test")


@dataclass
class Entity:
    id: str
    kind: str
    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    split: str = "train"
    """train: its Q&A is trained on; val/test: its Q&A never is (its facts are only in documents);
    reading: invented for notes pasted into chats, in no document; feed: invented for the feed's posts
    (colossus.world.posts), in no document either."""

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


def recombined_names(rng: random.Random, entities: list[Entity], n: int, taken: set[str]):
    """n unknown names made only of words that known names use, in a new combination: a known
    person's surname with another first name, a known place's root with another kind, ...
    Yields (the entity whose word is borrowed, the new name)."""
    common = {k: sorted({e.name.split()[0 if k == "person" else 1] for e in entities if e.kind == k})
              for k in schema.KINDS}
    made = 0
    for _ in range(50 * n):
        if made == n:
            return
        e = rng.choice(entities)
        own_first = e.kind != "person"  # people: "First Own"; places and organisations: "Own Kind"
        own = e.name.split()[0 if own_first else 1]
        other = rng.choice(common[e.kind])
        name = f"{own} {other}" if own_first else f"{other} {own}"
        if name not in taken:
            taken.add(name)
            made += 1
            yield e, name


def build_entities(seed: int, n_entities: int, val_frac: float, test_frac: float, n_unknown: dict[str, int],
                   n_readers: int = 0, n_recombined: dict[str, int] | None = None,
                   ) -> tuple[list[Entity], list[Unknown], list[Entity]]:
    """Entities (each kind split on its own into train / val / test); n_unknown[split] unknown names
    per split; n_readers invented entities that exist only in notes pasted into chats; and
    n_recombined[split] unknown names recombined from the words of known names (split 'test' becomes
    'test_recombined'), the harder kind of unknown name."""
    n_recombined = {f"{s}_recombined": n for s, n in (n_recombined or {}).items()}
    rng = random.Random(f"{seed}/entities")
    counts = kind_counts(n_entities)
    share = {k: counts[k] / n_entities for k in schema.KINDS}
    namer = Namer(rng, n_first_names=int(counts["person"] ** 0.5) * 2)
    names = {k: namer.names(k, counts[k]) for k in schema.KINDS}
    # unknown names and readers, in proportion to the kinds
    unknown = [Unknown(k, nm, s) for s, total in n_unknown.items() if total > 0 for k in schema.KINDS
               for nm in namer.names(k, max(1, round(total * share[k])))]
    values = (names["place"], names["org"], names["person"])
    entities = [Entity(f"{k}-{i:06d}", k, nm, facts(rng, k, *values))
                for k in schema.KINDS for i, nm in enumerate(names[k])]
    for k in schema.KINDS:  # split each kind on its own, so every split holds every kind
        assign_splits(rng, [e for e in entities if e.kind == k], val_frac, test_frac)
    taken = {e.name for e in entities}
    for split, total in n_recombined.items():
        unknown += [Unknown(e.kind, nm, split) for e, nm in recombined_names(rng, entities, total, taken)]
    readers = [Entity(f"reader-{k}-{i:06d}", k, nm, facts(rng, k, *values), split="reading")
               for k in schema.KINDS for i, nm in enumerate(namer.names(k, round(n_readers * share[k])))]
    return entities, unknown, readers
