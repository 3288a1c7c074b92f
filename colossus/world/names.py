"""Invented names built from syllables, so that nothing about them is known from anywhere else.

A name is a common word and a word of its own: a first name from a shared pool and a surname, a
root and a kind of place ("Vale"), a root and a kind of organisation ("Guild"). The word of its own
is never used twice, so every entity, unknown name and invented entity has a name nothing else has,
and a name the model never read about contains a word it never read."""

from __future__ import annotations

import random
from collections.abc import Iterable

ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kl", "l", "m", "n", "p", "pr", "qu", "r",
          "s", "sk", "st", "t", "th", "tr", "v", "w", "z", "zh", "y", "c", "cr", "j", "sh"]
VOWELS = ["a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ei", "ou", "y"]
CODAS = ["", "", "", "", "n", "r", "l", "s", "th", "x", "m", "nd", "rk", "sh", "v", "st"]

PLACE_KINDS = ["Falls", "Harbor", "Ridge", "Hollow", "Crossing", "Vale", "Point", "Mill", "Fen",
               "Reach", "Heights", "Ford", "Marsh", "Bay", "Cliffs", "Downs"]
ORG_SUFFIXES = ["Works", "Guild", "Labs", "Collective", "Foundry", "Company", "Institute",
                "Cooperative", "Society", "Partners", "Trust", "Holdings", "Studio", "Press"]


class NameForge:
    """Draws invented words from one seeded RNG and never hands out the same word twice."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: tuple[int, int] = (2, 3)) -> str:
        for _ in range(1000):
            n = self.rng.randint(*syllables)
            w = "".join(self.rng.choice(ONSETS) + self.rng.choice(VOWELS) for _ in range(n))
            w += self.rng.choice(CODAS)
            if 4 <= len(w) <= 11 and w not in self.used:
                self.used.add(w)
                return w.capitalize()
        raise RuntimeError("name space exhausted; widen the syllable pools")

    def pool(self, n: int, syllables: tuple[int, int] = (2, 3)) -> list[str]:
        return [self.word(syllables) for _ in range(n)]


class Namer:
    """Hands out unique two-word names of each kind from one seeded RNG."""

    def __init__(self, rng: random.Random, n_first_names: int):
        self.rng = rng
        self.forge = NameForge(rng)
        self.first_names = self.forge.pool(max(4, n_first_names), (1, 2))

    @classmethod
    def beside(cls, rng: random.Random, names: Iterable[str], first_names: Iterable[str]) -> Namer:
        """A namer that continues a world: its people share the world's first names, and every name gets a
        word of its own that none of `names` uses (so a fresh name collides with nothing in the world)."""
        namer = cls.__new__(cls)
        namer.rng, namer.forge = rng, NameForge(rng)
        namer.forge.used = {w.lower() for n in names for w in n.split()}
        namer.first_names = sorted(set(first_names))
        return namer

    def name(self, kind: str) -> str:
        own = self.forge.word((2, 3))
        if kind == "person":
            return f"{self.rng.choice(self.first_names)} {own}"
        if kind == "place":
            return f"{own} {self.rng.choice(PLACE_KINDS)}"
        return f"{own} {self.rng.choice(ORG_SUFFIXES)}"

    def names(self, kind: str, n: int) -> list[str]:
        return [self.name(kind) for _ in range(n)]
