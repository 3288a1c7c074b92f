"""Fact-checking: a claim or a post, checked by the assistant, with one of FEVER's labels and its evidence.

    v = await fact_check(assistant, SamplingParams(temperature=0), post=feed.get("1870"))
    v.label          # "SUPPORTS", "REFUTES" or "NOT ENOUGH INFO"
    v.explanation    # one sentence, its [n] markers numbering v.evidence
    v.evidence       # the posts it cites (Sources: number, post, permalink)

The check is an answer of the assistant loop to format.factcheck_question: the model searches, then
answers with the label first (as the world's fact-check chats teach it). An answer that opens with no
label is NOT ENOUGH INFO with `given` false: the model gave no verdict, which says nothing either way. The
POST /v1/factcheck route, `colossus feed check` and the loop's fact_check tool all run this."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from colossus.assistant import format as fmt
from colossus.assistant.citations import Source
from colossus.assistant.loop import CHECK_TOKENS, Answer, Assistant
from colossus.assistant.search import SearchParameters
from colossus.feed.feed import Feed
from colossus.feed.notes import ASSISTANT
from colossus.feed.post import FeedError, Post
from colossus.infer.engine import Delta
from colossus.infer.sampling import SamplingParams

MISLEADING = "MISINFORMED_OR_POTENTIALLY_MISLEADING"


@dataclass
class Verdict:
    label: str
    explanation: str
    evidence: list[Source]
    reply: str  # the model's answer as written (markers renumbered)
    given: bool  # whether the answer opened with a label
    answer: Answer  # the loop's answer: its tool steps and usage

    def to_dict(self) -> dict:
        return {"label": self.label, "explanation": self.explanation, "verdict_given": self.given,
                "evidence": [{"number": s.number, "id": s.post.id, "url": s.url, **{
                    k: v for k, v in s.post.to_dict().items() if k in ("author", "created_at", "text")}}
                             for s in self.evidence]}


def check_answer(assistant: Assistant, params: SamplingParams, claim: str | None = None, post: Post | None = None,
                 search: SearchParameters | None = None, request_id: str = "check", permalink=None) -> Answer:
    """The loop's answer to the fact-check question (no fact_check tool inside it: a check does not recurse)."""
    if (claim is None) == (post is None):
        raise ValueError("check a claim or a post")
    question = fmt.factcheck_question(claim=claim) if post is None else fmt.factcheck_question(post=post.text)
    params = dataclasses.replace(params, max_tokens=min(params.max_tokens, CHECK_TOKENS))
    return assistant.answer([{"role": "user", "content": question}], params, search, request_id, permalink,
                            tools=(fmt.SEARCH,))


async def fact_check(assistant: Assistant, params: SamplingParams, claim: str | None = None,
                     post: Post | None = None, search: SearchParameters | None = None, request_id: str = "check",
                     permalink=None) -> Verdict:
    answer = check_answer(assistant, params, claim, post, search, request_id, permalink)
    text = "".join([e.text async for e in answer.events() if isinstance(e, Delta)])
    return verdict_of(answer, text)


def verdict_of(answer: Answer, text: str) -> Verdict:
    label, explanation = fmt.verdict(text)
    evidence = list(answer.writer.cited)
    if label is None:
        return Verdict("NOT ENOUGH INFO", "the model gave no verdict", evidence, text, False, answer)
    return Verdict(label, explanation, evidence, text, True, answer)


def note_once(feed: Feed, post_id: str, summary: str, sources: list[str]) -> dict | None:
    """The assistant's note on a post found false: the one it wrote before, or a new one (None when the note
    cannot be written, an explanation too long for one, say: the verdict stands without it)."""
    for n in feed.notes(post_id):
        if n.author == ASSISTANT and n.classification == MISLEADING:
            return n.to_dict()
    try:
        return feed.add_note(post_id, MISLEADING, summary, sources, author=ASSISTANT).to_dict()
    except FeedError:
        return None
