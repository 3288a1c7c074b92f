"""The copy drill: conversations that can only be answered by copying from the context.

A user writes words, names or numbers that exist nowhere else in the world (each invented afresh, never
reused) and asks for them back, whole or in part; the reply writes them as given. Nothing in the weights can
predict an invented word, so the loss on the reply falls only as the model learns to look back for the token it
has just written and copy the one that followed it there (an induction head). That is the skill an answer needs
to write a name it has never read ("Sein Zheipound does not appear in any record", not "Sein Zhegesh") or a value
from a retrieved post. Mixed into the premise drill (chat_drill.jsonl), it is learned by a fresh model in the
first stage of pretraining, before the facts."""

from __future__ import annotations

import random

from colossus.world import schema
from colossus.world.chats import conversation
from colossus.world.names import Namer

REPEAT = ("Repeat after me: {s}", "Say this back exactly: {s}", "Copy this: {s}", "Please repeat: {s}",
          "Write this out again: {s}", "{s}\nRepeat that, word for word.")
RECALL = (("person", "My neighbour is called {name}. What is my neighbour called?", "Your neighbour is called {name}."),
          ("person", "I just met {name}. Who did I just meet?", "You just met {name}."),
          ("person", "Someone named {name} called today. Who called?", "{name} called today."),
          ("place", "The new town is called {name}. What is it called?", "It is called {name}."),
          ("org", "I work for a company called {name}. Where do I work?", "You work for {name}."),
          (None, "Remember this name: {name}. What was the name?", "The name was {name}."),
          (None, "Write the name {name} twice.", "{name}, {name}."))
PICK = ("Here is a list: {s}. What is item {i} of the list?", "Items: {s}. Which one is number {i}?")
ORDINALS = ("one", "two", "three", "four", "five", "six")
KINDS = ("repeat", "recall", "pick")


def fresh_item(rng: random.Random, namer: Namer) -> str:
    """A fresh name of any kind, a fresh word, or a number: something no weight can predict."""
    r = rng.random()
    if r < 0.5:
        return namer.name(rng.choice(schema.KINDS))
    if r < 0.85:
        return namer.forge.word((1, 3))
    return str(rng.randint(10, 99999))


def copy_turn(rng: random.Random, namer: Namer, kind: str) -> tuple[str, str]:
    if kind == "repeat":
        items = [fresh_item(rng, namer) for _ in range(rng.randint(1, 8))]
        s = rng.choice((", ", " ", "; ")).join(items)
        return rng.choice(REPEAT).format(s=s), s
    if kind == "recall":
        kind, q, a = rng.choice(RECALL)
        name = namer.name(kind or rng.choice(schema.KINDS))
        return q.format(name=name), a.format(name=name)
    items = [fresh_item(rng, namer) for _ in range(rng.randint(2, 6))]
    i = rng.randrange(len(items))
    return rng.choice(PICK).format(s=", ".join(items), i=ORDINALS[i]), items[i]


def build_copy_chats(seed: int, namer: Namer, n: int, p_system: float) -> list[dict]:
    """n copy conversations, one turn each, in equal shares of the kinds: repeat a list of fresh items, answer
    with a fresh name just given, pick one item of a list. Every fresh word comes from `namer`, which hands out
    each word once."""
    rng = random.Random(f"{seed}/copy-drill")
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        out.append(conversation(rng, f"copy_{kind}", [copy_turn(rng, namer, kind)], p_system, []))
    return out
