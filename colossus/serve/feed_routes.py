"""Routes of the feed (colossus.feed):

    POST /v1/posts                 one post, or {"posts": [...]} (up to MAX_BATCH): stored and indexed before
                                   the answer, idempotent on id -> {object: "list", data: [{id, created}], ...}
    GET  /v1/posts/search?q=...    BM25 top posts: from_date, to_date (YYYY-MM-DD or ISO 8601, UTC), author
                                   and excluded_author (repeatable), limit
    GET  /v1/posts/{post_id}       the post and its thread (ancestors through reply_to, then every reply)

A post is {id, author, created_at, text, reply_to?, lang?} (colossus.feed.post checks it and names the bad
field). The feed's SQLite and tantivy calls run in the thread pool."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from colossus.feed.feed import Feed
from colossus.feed.post import MAX_LIMIT, MAX_QUERY, MAX_TEXT, FeedError, Post, handle, parse_time
from colossus.serve.errors import APIError, error_responses
from colossus.serve.protocol import Strict, parse_json, read_body, request_body, validate_body

MAX_BATCH = 1000  # posts of one POST /v1/posts


class FeedPost(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    author: str = Field(pattern=r"^@?[A-Za-z0-9_]{1,15}$", description="a handle, with or without @")
    created_at: str = Field(description="ISO 8601; no zone means UTC", examples=["2026-11-30T09:00:00Z"])
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    reply_to: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    lang: str | None = Field(None, description="a BCP 47 tag: en, pt-BR")


class PostBatch(Strict):
    posts: list[FeedPost] = Field(min_length=1, max_length=MAX_BATCH)


class StoredPost(Strict):
    id: str
    author: str
    created_at: str
    text: str
    reply_to: str | None
    lang: str | None


class IngestResult(Strict):
    id: str
    created: bool = Field(description="false: a post of this id was stored before, and is kept as it was")


class IngestAnswer(Strict):
    object: str = "list"
    data: list[IngestResult]
    added: int
    existing: int


class SearchHit(StoredPost):
    score: float


class SearchAnswer(Strict):
    object: str = "list"
    data: list[SearchHit]


class PostWithThread(Strict):
    post: StoredPost
    thread: list[StoredPost]


REQUEST_MODELS = (FeedPost, PostBatch)  # for the OpenAPI document (app.py)

router = APIRouter(prefix="/v1/posts", tags=["Feed"])


def _feed(request: Request) -> Feed:
    return request.app.state.feed


def _posts(body: bytes) -> list[Post]:
    """One post or a batch -> checked posts; APIError 400 naming the post and field that are wrong."""
    obj = parse_json(body)
    batch = isinstance(obj, dict) and "posts" in obj
    req = validate_body(PostBatch if batch else FeedPost, obj)
    raw = [p.model_dump() for p in req.posts] if batch else [req.model_dump()]
    out = []
    for i, d in enumerate(raw):
        try:
            out.append(Post.from_dict({k: v for k, v in d.items() if v is not None}))
        except FeedError as e:
            where = f"posts.{i}" if batch else None
            raise APIError(400, f"{where}: {e}" if where else str(e), param=where) from None
    return out


@router.post("", operation_id="ingestPosts", summary="Store and index one post or a batch (idempotent on id)",
             response_model=None, openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"anyOf": [request_body(FeedPost)["requestBody"]["content"]["application/json"]["schema"],
                                      request_body(PostBatch)["requestBody"]["content"]["application/json"][
                                          "schema"]]}}}}},
             responses={200: {"model": IngestAnswer}, **error_responses(400, 413)})
async def ingest_posts(request: Request) -> dict:
    posts = _posts(await read_body(request, request.app.state.max_body))
    new = await run_in_threadpool(_feed(request).ingest, posts)
    return {"object": "list", "data": [{"id": p.id, "created": n} for p, n in zip(posts, new, strict=True)],
            "added": sum(new), "existing": len(new) - sum(new)}


@router.get("/search", operation_id="searchPosts", summary="The posts best matching a query (BM25)",
            response_model=None, responses={200: {"model": SearchAnswer}, **error_responses(400)})
async def search_posts(request: Request, q: str = Query(..., max_length=MAX_QUERY),
                       from_date: str | None = None, to_date: str | None = None,
                       author: Annotated[list[str] | None, Query()] = None,
                       excluded_author: Annotated[list[str] | None, Query()] = None,
                       limit: int = Query(10, ge=1, le=MAX_LIMIT)) -> dict:
    def checked(param: str, check, *args):
        try:
            return check(*args)
        except FeedError as e:
            raise APIError(400, str(e), param=param) from None

    since = checked("from_date", parse_time, from_date, "from_date") if from_date is not None else None
    until = checked("to_date", parse_time, to_date, "to_date") if to_date is not None else None
    if until is not None and len(to_date.strip()) == 10:  # a date alone (YYYY-MM-DD): to the end of that day
        until = until.replace(hour=23, minute=59, second=59)
    authors = [checked("author", handle, a, "author") for a in author or []]
    excluded = [checked("excluded_author", handle, a, "excluded_author") for a in excluded_author or []]
    hits = await run_in_threadpool(checked, "q", _feed(request).search, q, since, until, authors, excluded, limit)
    return {"object": "list", "data": [{**p.to_dict(), "score": s} for p, s in hits]}


@router.get("/{post_id}", operation_id="getPost", summary="A post and its thread", response_model=None,
            responses={200: {"model": PostWithThread}, **error_responses(404)})
async def get_post(request: Request, post_id: str) -> dict:
    feed = _feed(request)
    thread = await run_in_threadpool(feed.thread, post_id)
    post = next((p for p in thread if p.id == post_id), None)
    if post is None:
        raise APIError(404, f"no post with id {post_id[:80]!r}", param="post_id", code="post_not_found")
    return {"post": post.to_dict(), "thread": [p.to_dict() for p in thread]}
