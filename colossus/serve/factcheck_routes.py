"""POST /v1/factcheck: a post of the feed, or a claim, checked by the assistant (colossus.assistant.factcheck).

    curl localhost:8000/v1/factcheck -H 'Content-Type: application/json' -d '{"post_id": "1870"}'
    -> {"object": "factcheck", "label": "REFUTES", "explanation": "...", "evidence": [{id, url, ...}],
        "note": {...} | null, ...}

The label is one of FEVER's (SUPPORTS, REFUTES, NOT ENOUGH INFO); the evidence is the posts the answer
cites, each with its permalink. A post found false (REFUTES, with evidence) gets a community note by the
assistant, classified MISINFORMED_OR_POTENTIALLY_MISLEADING, its summary the explanation and its sources the
evidence: once (a second check returns the note already written), and only when the request leaves `note`
true. The check is greedy, so the same feed and model give the same verdict."""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from colossus.assistant.factcheck import fact_check, note_once
from colossus.assistant.format import LABELS
from colossus.feed.post import MAX_TEXT
from colossus.infer.sampling import SamplingParams
from colossus.serve.completions import engine_error
from colossus.serve.errors import APIError, error_responses
from colossus.serve.protocol import Strict, parse_body, read_body, request_body


class FactCheckRequest(Strict):
    """Give exactly one of post_id (a post of the feed) or text (a claim)."""

    model: str | None = None
    post_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    text: str | None = Field(None, min_length=1, max_length=MAX_TEXT)
    note: bool = Field(True, description="write a community note on a post found false")

    def check(self) -> None:
        if (self.post_id is None) == (self.text is None):
            raise APIError(400, "give exactly one of post_id (a post of the feed) or text (a claim)", param="post_id")
        if self.text is not None and not self.text.strip():
            raise APIError(400, "text: the claim is empty", param="text")


class Evidence(Strict):
    number: int
    id: str
    url: str
    author: str
    created_at: str
    text: str


class FactCheck(Strict):
    id: str
    object: str = "factcheck"
    created: int
    model: str
    post_id: str | None
    claim: str
    label: str = Field(description=" | ".join(LABELS))
    explanation: str = Field(description="one sentence; its [n] markers number the evidence")
    verdict_given: bool = Field(description="false: the model's answer opened with no label (NOT ENOUGH INFO)")
    evidence: list[Evidence]
    note: dict | None = Field(description="the community note written on the post, or null")


REQUEST_MODELS = (FactCheckRequest,)
router = APIRouter(tags=["Feed"])


@router.post("/v1/factcheck", operation_id="factCheck", summary="Check a post or a claim: a FEVER label and evidence",
             response_model=None, openapi_extra=request_body(FactCheckRequest),
             responses={200: {"model": FactCheck}, **error_responses(400, 404, 413, 503)})
async def factcheck(request: Request) -> dict:
    req = parse_body(FactCheckRequest, await read_body(request, request.app.state.max_body))
    service = request.app.state.slot.require()
    service.check_model(req.model)
    feed = request.app.state.feed
    post = None
    if req.post_id is not None:
        post = await run_in_threadpool(feed.get, req.post_id)
        if post is None:
            raise APIError(404, f"no post with id {req.post_id!r}", param="post_id", code="post_not_found")
    base = str(request.base_url).rstrip("/")
    rid = f"factcheck-{uuid.uuid4().hex}"
    try:
        v = await fact_check(service.m.assistant, SamplingParams(temperature=0), claim=req.text, post=post,
                             request_id=rid, permalink=lambda pid: f"{base}/posts/{pid}")
    except Exception as e:  # a full engine answers 503, as the generation routes do
        raise engine_error(e, "text") from None
    note = None
    if post is not None and req.note and v.label == "REFUTES" and v.evidence:
        note = await run_in_threadpool(note_once, feed, post.id, v.explanation, [s.url for s in v.evidence])
    return {"id": rid, "object": "factcheck", "created": int(time.time()), "model": service.m.name,
            "post_id": req.post_id, "claim": post.text if post is not None else req.text, **v.to_dict(),
            "note": note}

