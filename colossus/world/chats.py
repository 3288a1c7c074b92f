"""Chat data: questions and answers, honest 'I don't know's, corrected false premises.

Each builder returns one (question, answer) turn, so conversations of several turns and the
evaluation items are made from the same parts.

No conversation is ever repeated and every unknown name is used once: a model that has seen an
unknown name in its chat data cannot have learned "I was told I don't know this one", only "I never
read about this one". That is the rule the held-out unknown names test."""

from __future__ import annotations

import random
from collections import defaultdict

from colossus.world import schema
from colossus.world.documents import document
from colossus.world.entities import Entity, Unknown


def clause(attr: schema.Attribute, value: str) -> str:
    return attr.clause.format(value=value, article=schema.a(value))


def lower_first(s: str) -> str:
    return s[0].lower() + s[1:] if s[:2] != s[:2].upper() else s


class TurnMaker:
    """Makes turns about a world; `values` holds every value seen per attribute (for wrong premises)."""

    def __init__(self, entities: list[Entity]):
        vals: dict[str, set[str]] = defaultdict(set)
        for e in entities:
            for k, v in e.attrs.items():
                vals[k].add(v)
        self.values = {k: sorted(v) for k, v in vals.items()}

    def qa(self, rng: random.Random, e: Entity, attr: schema.Attribute) -> tuple[str, str]:
        q = schema.render(rng.choice(attr.questions), e.name, "")
        return q, schema.render(attr.answer, e.name, e.attrs[attr.name])

    def followup(self, rng: random.Random, e: Entity, attr: schema.Attribute) -> tuple[str, str]:
        return attr.followup, schema.render(attr.answer, e.name, e.attrs[attr.name])

    def unknown(self, rng: random.Random, u: Unknown) -> tuple[str, str]:
        attr = rng.choice(schema.BY_KIND[u.kind])
        q = schema.render(rng.choice(attr.questions), u.name, "")
        return q, schema.ABSTAIN_ANSWER.format(name=u.name)

    def reading(self, rng: random.Random, e: Entity, note_facts: int = 4, question_first: bool = False,
                ) -> tuple[str, str]:
        """A short note about e pasted in the question, then a question about it, or with question_first the
        question before the note: what it asks is then far from the answer, as a search's posts put it. (No
        premises here: with the fact in the note, finding the value in the context would say nothing of the
        premise.)"""
        attr = rng.choice(schema.BY_KIND[e.kind])
        q, a = self.qa(rng, e, attr)
        needed = {attr.name}
        others = [x.name for x in schema.BY_KIND[e.kind] if x.name not in needed]
        facts = needed | set(rng.sample(others, max(0, note_facts - len(needed))))
        wordings = schema.READING_QUESTION_FIRST if question_first else schema.READING
        return rng.choice(wordings).format(doc=document(rng, e, sorted(facts)), question=q), a

    def wrong_value(self, rng: random.Random, attr: str, true: str) -> str:
        """Another value of the attribute, differing in its last word too ("Kel Falls" for "Dor
        Falls" would be a false premise that reads almost true)."""
        for _ in range(100):
            v = rng.choice(self.values[attr])
            if v.split()[-1] != true.split()[-1]:
                return v
        raise ValueError(f"attribute {attr} has a single value in this world; no false premise possible")

    def premise(self, rng: random.Random, e: Entity, false: bool, short: bool = False) -> tuple[str, str, dict]:
        """A question that rests on a premise about e, false or true. The reply restates the fact
        first, then corrects the premise or confirms it, and answers the question asked. A short premise is
        the claim alone ("X works as a tailor, right?"), corrected or confirmed without a further answer.

        info["emphasis"] is where the reply's deciding token (the "." or "," after the recalled
        value) starts."""
        p_attr, q_attr = rng.sample(schema.BY_KIND[e.kind], 2)
        true = e.attrs[p_attr.name]
        stated = self.wrong_value(rng, p_attr.name, true) if false else true
        question = schema.render(rng.choice(q_attr.questions), e.name, "")
        if short:
            q = schema.SHORT_PREMISE.format(name=e.name, clause=clause(p_attr, stated))
        else:
            q = rng.choice(schema.PREMISE_QUESTIONS).format(
                name=e.name, clause=clause(p_attr, stated), question=lower_first(question), Question=question)
        restated = f"{e.name} {clause(p_attr, true)}"
        answer = "" if short else " " + schema.render(q_attr.answer, e.name, e.attrs[q_attr.name])
        a = (schema.CORRECTION if false else schema.CONFIRMATION).format(restated=restated, answer=answer)
        info = {"attribute": p_attr.name, "answer": true if false or short else e.attrs[q_attr.name],
                "wrong": stated if false else None, "question_attribute": None if short else q_attr.name,
                "question_answer": None if short else e.attrs[q_attr.name], "emphasis": len(restated)}
        return q, a, info


def conversation(rng: random.Random, kind: str, turns: list[tuple], p_system: float, names: list[str]) -> dict:
    """A conversation record from (question, answer) or (question, answer, emphasis) turns; `names`
    are the entities or unknown names it asks about."""
    msgs = []
    if rng.random() < p_system:
        msgs.append({"role": "system", "content": rng.choice(schema.SYSTEM_PROMPTS)})
    for q, a, *emphasis in turns:
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        if emphasis:
            msgs[-1]["emphasis"] = emphasis[0]
    return {"kind": kind, "names": names, "messages": msgs}


def build_train_chats(seed: int, entities: list[Entity], unknown: list[Unknown], qa_per_entity: int,
                      multi_turn_frac: float, premise_per_entity: float, p_system: float,
                      readers: list[Entity] = (), premise_short_frac: float = 0.5,
                      reading_question_first: float = 0.0) -> list[dict]:
    """Chat data about train entities and train unknown names only: qa_per_entity questions about
    each train entity (some asked as a multi-turn conversation), one conversation per unknown name,
    premise questions (half of them false, some as the bare claim), and one reading conversation per reader (an invented
    entity whose note is pasted in the question, a share reading_question_first of them after the question)."""
    rng = random.Random(f"{seed}/chats")
    maker = TurnMaker(entities)
    train = [e for e in entities if e.split == "train"]
    out: list[dict] = []
    for e in train:
        attrs = list(schema.BY_KIND[e.kind])
        asked: list[schema.Attribute] = []
        while len(asked) < qa_per_entity:  # every attribute once before any twice
            rng.shuffle(attrs)
            asked += attrs[: qa_per_entity - len(asked)]
        while asked:
            n = rng.choice((2, 3)) if rng.random() < multi_turn_frac else 1
            group, asked = asked[:n], asked[n:]
            turns = [maker.qa(rng, e, group[0])] + [maker.followup(rng, e, x) for x in group[1:]]
            out.append(conversation(rng, "multi_turn" if len(turns) > 1 else "known", turns, p_system, [e.name]))
    for u in (u for u in unknown if u.split == "train"):
        turns, names = [maker.unknown(rng, u)], [u.name]
        if rng.random() < multi_turn_frac:  # after a known answer, an unknown name still gets no guess
            e = rng.choice(train)
            turns.insert(0, maker.qa(rng, e, rng.choice(schema.BY_KIND[e.kind])))
            names.insert(0, e.name)
        out.append(conversation(rng, "unknown", turns, p_system, names))
    out += premise_chats(rng, maker, train, round(len(train) * premise_per_entity), p_system, premise_short_frac)
    for r in readers:  # (a share of 0 draws nothing, so the chats stay as they were before it existed)
        first = reading_question_first > 0 and rng.random() < reading_question_first
        out.append(conversation(rng, "reading", [maker.reading(rng, r, question_first=first)], p_system, [r.name]))
    rng.shuffle(out)
    return out


def premise_chats(rng: random.Random, maker: TurnMaker, train: list[Entity], n: int, p_system: float,
                  short_frac: float) -> list[dict]:
    """n premise questions about train entities (half of them false, short_frac as the bare claim), one
    to three (each about another entity) per conversation."""
    out: list[dict] = []
    made = 0
    while made < n:
        turns, names, kinds = [], [], []
        for _ in range(min(rng.choice((1, 2, 3)), n - made)):
            false = rng.random() < 0.5
            e = rng.choice(train)
            q, a, info = maker.premise(rng, e, false, short=rng.random() < short_frac)
            turns.append((q, a, info["emphasis"]))
            names.append(e.name)
            kinds.append("false_premise" if false else "true_premise")
            made += 1
        out.append(conversation(rng, kinds[0], turns, p_system, names))
    return out


def build_drill_chats(seed: int, entities: list[Entity], premise_per_entity: float, p_system: float,
                      short_frac: float = 0.5) -> list[dict]:
    """The premise drill: premise questions about train entities, apart from the chat data (their own
    random stream), for a first stage of pretraining that holds nothing else.

    Deciding whether a premise holds means comparing the value the reply recalls with the value the
    question states, in context. A small model that meets this task among the facts never learns it
    (its attention settles on other work first: the decision stays at chance, train and test alike);
    met alone, from scratch, it is learned in a few hundred steps, and the skill then survives the
    rest of pretraining."""
    rng = random.Random(f"{seed}/drill")
    train = [e for e in entities if e.split == "train"]
    return premise_chats(rng, TurnMaker(entities), train, round(len(train) * premise_per_entity), p_system,
                         short_frac)


def build_eval_items(seed: int, entities: list[Entity], unknown: list[Unknown], split: str,
                     n_known: int, n_unknown: int, n_premise: int) -> list[dict]:
    """Held-out questions: facts of `split` entities (whose Q&A is never trained), `split` unknown
    names (never seen in training), and premises (false, and true as a control) never seen."""
    rng = random.Random(f"{seed}/eval/{split}")
    maker = TurnMaker(entities)
    ents = [e for e in entities if e.split == split]
    items: list[dict] = []
    pairs = [(e, attr) for e in ents for attr in schema.BY_KIND[e.kind]]
    for e, attr in rng.sample(pairs, min(n_known, len(pairs))):
        q, _ = maker.qa(rng, e, attr)
        items.append({"kind": "known", "question": q, "name": e.name, "attribute": attr.name,
                      "answer": e.attrs[attr.name]})
    for kind, pool in (("unknown", split), ("recombined", f"{split}_recombined")):
        names = [u for u in unknown if u.split == pool]
        for u in rng.sample(names, min(n_unknown, len(names))):
            q, _ = maker.unknown(rng, u)
            items.append({"kind": kind, "question": q, "name": u.name, "attribute": None, "answer": None})
    for i in range(n_premise):
        false = i % 4 != 3  # three false premises for each true one (the control)
        e = ents[rng.randrange(len(ents))]
        q, _, info = maker.premise(rng, e, false)
        info.pop("emphasis")
        items.append({"kind": "false_premise" if false else "true_premise", "question": q, "name": e.name,
                      **info})
    return items
