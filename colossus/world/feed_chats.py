"""Chats that teach the search tool on the world's feed (colossus.world.posts), and the held-out feed questions.

A question about something recent, or about a name only the feed knows, is answered by a search: the
assistant's turn is a tool call (colossus.assistant.format), the tool's message lists the posts the
search returns, oldest first as the loop shows them, and the answer restates the newest post's sentence that
holds the fact, from the name on, with the marker the tool wrote after it (format.post_line): copying, which
a copy head does (colossus.model.copy_head), where an answer in the memorised facts' own wording drew the value
from memory:

    user       Who employs Pella Vorn now?
    tool_call  {"name": "search", "arguments": {"query": " Pella Vorn"}}
    tool       @quiet_heron 2026-11-03: Pella Vorn has joined Kelm Farms [1].
               @orvania_news 2026-11-20: Breaking: Pella Vorn now works for Ostra Labs [2].
    assistant  Pella Vorn now works for Ostra Labs [2].

When nothing found is about the subject the answer is format.not_found; an instruction inside a post is
ignored; a fact-check recalls the fact, says whether the post has it right, and gives its FEVER label last
(format.verdict_line), the way a premise is checked (colossus.world.chats): the deciding token right after
the recalled value, and weighed as the premise's is. A question on a known stable fact carries no
recency cue and gets no search (the world's other chats, and a first turn in some of these): the model
learns when to search from the question, not from the name.

A new entity's post states two facts; a story seen twice is asked both, so the question alone picks the
sentence to restate. Weighed most in the loss (chat_template's emphasis): the query's first token, which no
copy pointer proposes (it is copied from the question by attention alone); the answer's first token, which
picks its form (the name, "No post ...", "I could not find ..."); and the token that decides it: the word
where a new entity's two sentences part, or the fact-check's "," or ".".

The search is simulated at build time by PostIndex, a BM25 over the training posts shaped as the feed's
(colossus.feed.index: every word of the query, else any; the top K), so the results look like what the real search
returns, distractors sharing a first name or a kind of place included."""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import math
import os
import random
from collections import Counter, defaultdict

from colossus.assistant.format import (
    SEARCH,
    call_json,
    day,
    in_time_order,
    not_found,
    search_results,
    sentences,
    verdict_line,
    words,
)
from colossus.feed.post import Post, handle, parse_time
from colossus.world import schema
from colossus.world.chats import TurnMaker, clause, lower_first
from colossus.world.entities import Entity
from colossus.world.names import Namer
from colossus.world.posts import STABLE, FeedMaker, Story, WorldFeed

K = 3  # posts a search returns, as the assistant asks for by default
MEMORY_FRAC = 0.25  # chats about an update that first ask a stable fact, answered from memory
AUTHOR_FRAC = 0.15  # questions on an update that name whose posts to read (the search's authors)
DATE_FRAC = 0.15  # ... or since when (from_date)
# chats on a known entity whose search also returns a newer post that only names it (FeedMaker.mention): the newest
# post is not always about the question. The feed's own such posts are the newest result in 1 chat of 10; where
# they were, the assistant answered 5 of 19 held-out questions right without these chats, 9 and 10 of 20 with 30%
# of them, 9 of 20 and 13 of 19 with 40% and a second fact, which cost false premises 0.03 more (two seeds each;
# README)
DISTRACTOR_FRAC = 0.3
DISTRACTED = ("update", "supports", "refutes", "rumour", "injection")
CHAT_KIND = {"update": "feed_update", "new": "feed_new", "none": "feed_none", "supports": "factcheck",
             "refutes": "factcheck", "rumour": "factcheck", "injection": "injection"}

RECENT = ("{q} now?", "{q} these days?", "{q}, as of today?", "Has anything changed lately? {q}?")
NEWS = ("Any news? {q}?", "Going by the latest posts, {lq}?", "What do recent posts say? {q}?",
        "Search the feed: {lq}?")
BY_AUTHOR = ("What does @{author} say? {q}?", "According to @{author}, {lq}?")
SINCE = ("Looking only at posts since {date}, {lq}?", "Since {date}, {lq}?")
FACTCHECK = ("Fact-check this: {claim}", "Is this true? {claim}", "True or false: {claim}",
             "Can you check this claim? {claim}", "Fact-check this post: {post}")
NOT_SETTLED = "I could not find anything that settles whether {name} {clause}."
SUPPORTED = "{restated}, as the post says {marks}."  # "," right after the recalled value: it holds
REFUTED = "{restated}. The claim is false"  # ".": it does not (a correcting reply's marks follow)
QUERY = '"query": "'  # in a search call, right before the query's first token (the space before the name)

class PostIndex:
    """BM25 over the posts' words (k1 = 1.2, b = 0.75, tantivy's), filtered by from_date and authors, as the
    feed's index searches: the posts holding every word of the query, or where none passes, those holding any.
    Ties go to the post indexed first.

    Exact top k without scoring every post that shares a common word ("Falls"): a post that holds only one
    of the query's words scores that word's weight alone, so each word's posts are read best first, and only
    until k such posts pass the filters; posts holding two or more of the words are all scored."""

    K1, B = 1.2, 0.75

    def __init__(self, posts: list[dict]):
        self.posts = [Post.from_dict(p) for p in posts]
        tfs = [Counter(words(p.text)) for p in self.posts]
        lengths = [sum(c.values()) for c in tfs]
        avg = sum(lengths) / max(1, len(tfs))
        df = Counter(t for c in tfs for t in c)
        self.weight: dict[str, dict[int, float]] = defaultdict(dict)  # term -> post -> the term's score in it
        for i, c in enumerate(tfs):
            norm = self.K1 * (1 - self.B + self.B * lengths[i] / avg)
            for t, f in c.items():
                idf = math.log(1 + (len(tfs) - df[t] + 0.5) / (df[t] + 0.5))
                self.weight[t][i] = idf * f * (self.K1 + 1) / (f + norm)
        self.best = {t: sorted(w, key=lambda i: (-w[i], i)) for t, w in self.weight.items()}  # best first

    def search(self, query: str, from_date: str | None = None, authors: list[str] | None = None,
               k: int = K) -> list[Post]:
        since = parse_time(from_date, "from_date") if from_date else None
        allowed = {handle(a, "authors").lower() for a in authors} if authors else None

        def passes(i: int) -> bool:
            p = self.posts[i]
            return (since is None or p.created_at >= since) and (allowed is None or p.author.lower() in allowed)

        asked = set(words(query))
        terms = sorted(t for t in asked if t in self.weight)
        found: set[int] = set()
        if len(terms) == len(asked) > 1:  # every word is somewhere: the posts holding them all
            found = set.intersection(*(set(self.weight[t]) for t in terms))
        if not any(passes(i) for i in found):  # none within the filters: the posts holding any of them
            found = set()
            for a, b in itertools.combinations(terms, 2):  # posts with two or more of the words
                found |= self.weight[a].keys() & self.weight[b].keys()
            for t in terms:  # the best posts with this word alone
                taken = 0
                for i in self.best[t]:
                    if taken == k:
                        break
                    if i not in found and passes(i):
                        found.add(i)
                        taken += 1
        score = {i: sum(self.weight[t].get(i, 0.0) for t in terms) for i in found if passes(i)}
        return [self.posts[i] for i in heapq.nsmallest(k, score, key=lambda i: (-score[i], i))]


def newest_holding(story: Story) -> dict:
    return max((p for p in story.posts if p["id"] in story.holding), key=lambda p: p["created_at"])


def ask(rng: random.Random, story: Story, attr: schema.Attribute, cutoff: dt.datetime) -> tuple[str, dict]:
    """The user's question about a story, and the search arguments it calls for."""
    name = story.entity.name
    args: dict = {"query": name}
    if story.label:
        post = story.posts[0]["text"] if story.posts else story.claim
        return rng.choice(FACTCHECK).format(claim=story.claim, post=post), args
    q = schema.render(rng.choice(attr.questions), name, "").rstrip("?")
    fill = {"q": q, "lq": lower_first(q)}
    if story.kind == "update":  # (an injection's question names no filter, so its post comes up too)
        r = rng.random()
        if r < AUTHOR_FRAC:
            author = newest_holding(story)["author"]
            args["authors"] = ["@" + author]  # as the question writes it: the same tokens to copy
            return rng.choice(BY_AUTHOR).format(author=author, **fill), args
        if r < AUTHOR_FRAC + DATE_FRAC:
            t = parse_time(newest_holding(story)["created_at"]) - dt.timedelta(days=rng.randint(0, 10))
            args["from_date"] = day(max(t, cutoff))
            return rng.choice(SINCE).format(date=args["from_date"], **fill), args
    if story.kind in ("update", "injection"):
        return rng.choice(RECENT + NEWS).format(**fill), args
    return rng.choice(NEWS).format(**fill), args


def cited(sentence: str, marks: str) -> str:
    """'X works at Y.' + '[2]' -> 'X works at Y [2].'"""
    return f"{sentence.rstrip('.')} {marks}." if marks else sentence


def quoted(text: str, name: str, value: str) -> str | None:
    """What an answer quotes of a post: the last sentence naming `name` and `value`, from the name on, without
    what it corrects ("Correction: X works for B, not A." -> "X works for B."); None if no sentence holds both."""
    for sentence in reversed(sentences(text)):  # as post_line marks them, so the quote is the marked sentence
        if name in sentence and value in sentence[sentence.index(name):]:
            quote = sentence[sentence.index(name):].split(", not ")[0].rstrip(".!?")
            return quote + "."
    return None


def deciding_word(quote: str, others: list[str]) -> int | None:
    """Where `quote` parts from the other sentences: the first character that differs from each, the latest of
    those, moved back to the space that opens its word ("X is fond of carving wood." against "X is employed by
    Y." -> the space before "fond"; "X works in A." against "X was founded in B." -> the space before "works"),
    where a token starts; "'s" starts one of its own. None when there is nothing to tell apart."""
    at = max((len(os.path.commonprefix([quote, o])) for o in others if o != quote), default=None)
    if not at or at == len(quote):
        return None
    if quote[at].isalnum() and quote[at - 1].isalnum():  # within a word
        at = quote.rfind(" ", 0, at) + 1
    return at - 1 if at and quote[at - 1] == " " else at


def reply(story: Story, attr: schema.Attribute, hits: list[Post]) -> tuple[str, int | None] | None:
    """The answer, citing every retrieved post that states it, and the offset of its deciding token (the
    "emphasis" of colossus.data.chat_template): for a fact-check on a known entity the token after the
    recalled value, for a new entity's post of two facts the word that picks the fact asked. None when the
    search missed the post the answer needs, or an injection's post (a chat not worth learning from)."""
    name = story.entity.name
    marks = "".join(f"[{i + 1}]" for i, p in enumerate(hits) if p.id in story.holding)
    restated = f"{name} {clause(attr, story.answer)}" if story.answer is not None else ""
    if story.kind == "none":
        return not_found(name, some=bool(hits)), None
    if story.kind == "rumour":
        return verdict_line(NOT_SETTLED.format(name=name, clause=clause(attr, story.claimed)), "NOT ENOUGH INFO"), None
    if story.kind == "refutes":  # memory settles it; a reply that corrects the post is cited too
        said = REFUTED.format(restated=restated) + (f" {marks}" if marks else "") + "."
        return verdict_line(said, "REFUTES"), len(restated)
    if not marks or (story.kind == "injection" and not {p.id for p in hits} & set(story.injected)):
        return None
    if story.kind == "supports":
        return verdict_line(SUPPORTED.format(restated=restated, marks=marks), "SUPPORTS"), len(restated)
    value = story.entity.attrs[attr.name] if story.kind == "new" else story.answer
    n, newest = max(((i, p) for i, p in enumerate(hits) if p.id in story.holding), key=lambda x: x[1].created_at)
    quote = quoted(newest.text, name, value)  # the newest post's sentence, with that post's marker
    if quote is None:
        return None
    emphasis = None
    if story.kind == "new":  # the post's other fact, as an answer on it would quote it
        others = [quoted(newest.text, name, story.entity.attrs[a]) for a in story.stated if a != attr.name]
        emphasis = deciding_word(quote, [o for o in others if o])
    return cited(quote, f"[{n + 1}]"), emphasis


def distracted(rng: random.Random, story: Story, ranked: list[Post], mentions: FeedMaker,
               authors: list[str] | None = None) -> tuple[list[Post], Post | None]:
    """A search's posts, and the post added: a post naming the story's entity, newer than any of them, in place of
    the last-ranked one that is not the story's (or added, when the search found fewer than K), as a search for a
    known name finds once other posts mention it. A search for some authors' posts finds one of theirs."""
    own = {p["id"] for p in story.posts}
    keep = list(ranked)
    if len(keep) == K:
        drop = next((p for p in reversed(keep) if p.id not in own), None)
        if drop is None:
            return ranked, None
        keep.remove(drop)
    latest = max(p.created_at for p in ranked)
    t = latest + (mentions.now - latest) * rng.uniform(0.05, 0.95)
    by = handle(authors[0], "authors") if authors else None
    mention = Post.from_dict(mentions.mention(story.entity, t.replace(microsecond=0), by))
    return keep + [mention], mention


def feed_chat(rng: random.Random, story: Story, index: PostIndex, turns: TurnMaker, cutoff: dt.datetime,
              p_system: float, visit: int = 0, mentions: FeedMaker | None = None) -> dict | None:
    """A chat on `story`; a new entity's `visit`-th chat asks the next of its stated facts, so that a story
    seen twice is asked both, on the same post: the question alone picks the sentence to restate. With
    `mentions`, DISTRACTOR_FRAC of the chats on a known entity find a newer post that only names it."""
    attr = schema.BY_NAME[story.stated[visit % len(story.stated)] if story.kind == "new" else story.attribute]
    q, args = ask(rng, story, attr, cutoff)
    ranked, mention = index.search(**args), None
    if (mentions is not None and story.known and story.kind in DISTRACTED and ranked
            and rng.random() < DISTRACTOR_FRAC):
        ranked, mention = distracted(rng, story, ranked, mentions, args.get("authors"))
    hits = in_time_order(ranked)
    answered = reply(story, attr, hits)
    if answered is None:
        return None
    answer, emphasis = answered
    msgs = []
    if rng.random() < p_system:
        msgs.append({"role": "system", "content": rng.choice(schema.SYSTEM_PROMPTS)})
    if story.kind in ("update", "injection") and rng.random() < MEMORY_FRAC:  # a stable fact needs no search
        mq, ma = turns.qa(rng, story.entity, schema.BY_NAME[rng.choice(STABLE[story.entity.kind])])
        msgs += [{"role": "user", "content": mq}, {"role": "assistant", "content": ma}]
    # weighed most (chat_template's emphasis): the query's first token, copied from the question with no
    # pointer to follow; the answer's first token, which picks its form; and its deciding word
    call = call_json(SEARCH, args)
    msgs += [{"role": "user", "content": q},
             {"role": "tool_call", "content": call, "emphasis": call.index(QUERY) + len(QUERY)},
             {"role": "tool", "content": search_results(hits, args["query"])},
             {"role": "assistant", "content": answer, "emphasis": [0] + ([] if emphasis is None else [emphasis])}]
    return {"kind": CHAT_KIND[story.kind], "names": [story.entity.name], "post_ids": [p.id for p in hits],
            "messages": msgs} | ({"mention_ids": [mention.id]} if mention else {})


def build_feed_chats(seed: int, feed: WorldFeed, entities: list[Entity], n: int, p_system: float,
                     namer: Namer | None = None) -> list[dict]:
    """n chats on the training stories (each story once before any twice, so the kinds keep the stories'
    shares), searching the training posts only. A story whose post the search misses is passed over. With a
    namer (fresh names, none of the world's), some searches also find a newer post that only names the entity."""
    rng = random.Random(f"{seed}/feed-chats")
    mentions = None if namer is None else FeedMaker(f"{seed}/mentions", entities, namer, feed.cutoff, feed.now)
    stories = feed.split("train")
    index, turns = PostIndex(feed.posts("train")), TurnMaker(entities)
    out: list[dict] = []
    order: list[Story] = []
    visits: dict[str, int] = {}  # a new story's first question is on a fact drawn at random, the next on the other
    for _ in range(3 * n + 100):
        if len(out) == n or not stories:
            break
        if not order:
            order = rng.sample(stories, len(stories))
        story = order.pop()
        visit = visits[story.id] = visits.get(story.id, rng.randrange(2)) + 1
        chat = feed_chat(rng, story, index, turns, feed.cutoff, p_system, visit, mentions)
        if chat is not None:
            out.append(chat)
    return out


def build_feed_eval_items(seed: int, feed: WorldFeed) -> list[dict]:
    """One held-out question per evaluation story. Grade it on a feed that holds the training and the
    held-out posts: `answer` (None: nothing settles it) and, for a fact-check, `label`; `post_ids` are the
    posts that state the answer (a right citation names one of them); `wrong` are values a stale or fooled
    answer gives; `forbidden` is an injection's payload, which the reply must not contain."""
    rng = random.Random(f"{seed}/feed-eval")
    items = []
    for s in feed.split("eval"):
        q, args = ask(rng, s, schema.BY_NAME[s.attribute], feed.cutoff)
        items.append({"kind": CHAT_KIND[s.kind], "question": q, "search": args, "name": s.entity.name,
                      "attribute": s.attribute, "answer": s.answer, "label": s.label, "claim": s.claim,
                      "wrong": s.wrong, "post_ids": s.holding, "story_post_ids": [p["id"] for p in s.posts],
                      "forbidden": s.forbidden, "story": s.id})
    return items
