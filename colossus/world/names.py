"""Invented names built from syllables, so that nothing about them is known from anywhere else.

Every kind of name is two words drawn from shared pools (a person's first and last name, a place's
root and kind, an organisation's root and suffix). An unknown name is a new combination of the same
words: it tokenizes like a known one, and only knowing *which* combinations exist tells them apart."""

from __future__ import annotations

import random

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


def combine(rng: random.Random, first: list[str], second: list[str], n: int,
            taken: set[str]) -> list[str]:
    """n new two-word names (first-pool word + second-pool word) not in `taken`; adds them to it."""
    out: list[str] = []
    for _ in range(50 * n + 1000):
        if len(out) == n:
            return out
        name = f"{rng.choice(first)} {rng.choice(second)}"
        if name not in taken:
            taken.add(name)
            out.append(name)
    raise RuntimeError(f"pools of {len(first)}x{len(second)} words are too small for {n} more names")
