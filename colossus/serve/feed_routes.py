"""Routes of the feed (colossus.feed):

    POST /v1/posts                  one post, or {"posts": [...]} (up to MAX_BATCH): stored and indexed before
                                    the answer, idempotent on id -> {object: "list", data: [{id, created}], ...}
    GET  /v1/posts?limit=&before=   the newest posts, newest first (by created_at); before: a post id, to page on
                                    -> {object: "list", data, first_id, last_id, has_more, last_seq}
    GET  /v1/posts/search?q=...     BM25 top posts: from_date, to_date (YYYY-MM-DD or ISO 8601, UTC), author
                                    and excluded_author (repeatable), limit
    GET  /v1/posts/stream?after=N   server-sent events, one per post as it is stored: `id: N` (its change number)
                                    and `data: {post}`; after=N (or a Last-Event-ID header, as EventSource sends
                                    on reconnecting) first sends every post added after change N, so a client
                                    that lists with GET /v1/posts and then streams from its last_seq, or that
                                    reconnects, misses nothing. A comment every HEARTBEAT seconds keeps the
                                    connection open; 503 when colossus.feed.live.MAX_SUBSCRIBERS streams are
                                    open already
    GET  /v1/posts/{post_id}        {post, thread, notes}: the post, its thread (ancestors through reply_to, then
                                    every reply; each post with its notes), and its own community notes
    GET  /v1/posts/{post_id}/notes  the post's community notes, oldest first
    POST /v1/posts/{post_id}/notes  a new note {classification, summary, sources, status?, author?} -> the note

A post is {id, author, created_at, text, reply_to?, lang?} (colossus.feed.post checks it and names the bad
field), a note {noteId, postId, classification, summary, sources, status, createdAt, author} as X's Community
Notes write theirs (colossus.feed.notes). An unknown post is 404 post_not_found. /search and /stream are
declared before /{post_id}, which would take them otherwise (and the feed refuses those two as post ids). The
feed's SQLite and tantivy calls run in the thread pool."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from colossus.feed.feed import Feed
from colossus.feed.live import Subscription, TooManySubscribers
from colossus.feed.notes import CLASSIFICATIONS, MAX_SOURCES, MAX_SUMMARY, MAX_URL, STATUSES, URL_PATTERN
from colossus.feed.post import (
    ID,
    MAX_LIMIT,
    MAX_QUERY,
    MAX_TEXT,
    FeedError,
    Post,
    PostNotFound,
    handle,
    parse_time,
)
from colossus.serve.errors import REF, APIError, error_responses
from colossus.serve.protocol import Strict, parse_body, parse_json, read_body, request_body, validate_body
from colossus.serve.sse import SSEResponse, event

MAX_BATCH = 1000  # posts of one POST /v1/posts
HEARTBEAT = 15.0  # seconds between the stream's keep-alive comments
RETRY_MS = 2000  # how long a client waits before reconnecting a broken stream (the SSE retry field)
REPLAY_BATCH = 500  # posts read from the store at a time when a stream catches up


class FeedPost(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    author: str = Field(pattern=r"^@?[A-Za-z0-9_]{1,15}$", description="a handle, with or without @")
    created_at: str = Field(description="ISO 8601; no zone means UTC", examples=["2026-11-30T09:00:00Z"])
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    reply_to: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    lang: str | None = Field(None, description="a BCP 47 tag: en, pt-BR")


class PostBatch(Strict):
    posts: list[FeedPost] = Field(min_length=1, max_length=MAX_BATCH)


class NoteCreate(Strict):
    """A community note to add to a post."""

    classification: Literal[CLASSIFICATIONS] = Field(description="what the note says of the post")
    summary: str = Field(min_length=1, max_length=MAX_SUMMARY, description="the note's text, for a reader")
    sources: list[Annotated[str, Field(max_length=MAX_URL, pattern=URL_PATTERN)]] = Field(
        min_length=1, max_length=MAX_SOURCES,
        description="the evidence: http(s) URLs, or permalinks of this feed's posts (/posts/ID)",
        examples=[["/posts/1802"]])
    status: Literal[STATUSES] | None = Field(None, description="NEEDS_MORE_RATINGS unless given")
    author: str | None = Field(None, pattern=r"^@?[A-Za-z0-9_]{1,15}$",
                               description="the writer's handle; the assistant's (colossus) unless given")


class StoredPost(Strict):
    id: str
    author: str
    created_at: str
    text: str
    reply_to: str | None
    lang: str | None


class CommunityNote(Strict):
    """A note as X's Community Notes write it (their field names)."""

    noteId: str
    postId: str
    classification: Literal[CLASSIFICATIONS]
    summary: str
    sources: list[str]
    status: Literal[STATUSES]
    createdAt: str = Field(description="ISO 8601, UTC, to the millisecond")
    author: str


class NoteList(Strict):
    object: str = "list"
    data: list[CommunityNote]


class IngestResult(Strict):
    id: str
    created: bool = Field(description="false: a post of this id was stored before, and is kept as it was")


class IngestAnswer(Strict):
    object: str = "list"
    data: list[IngestResult]
    added: int
    existing: int


class PostPage(Strict):
    object: str = "list"
    data: list[StoredPost]
    first_id: str | None
    last_id: str | None = Field(description="the `before` of the next page")
    has_more: bool
    last_seq: int = Field(description="the feed's last change when this page was read: GET /v1/posts/stream?after="
                                      "last_seq sends every post added since")


class SearchHit(StoredPost):
    score: float


class SearchAnswer(Strict):
    object: str = "list"
    data: list[SearchHit]


class ThreadPost(StoredPost):
    notes: list[CommunityNote]


class MentionState(Strict):
    """The post as a mention of the assistant (colossus.feed.mentions)."""

    state: Literal["pending", "answered", "failed"]
    reply_id: str | None = Field(description="the assistant's reply, in the post's thread, once answered")
    attempts: int = Field(description="attempts started at writing the reply")
    created: str = Field(description="when the mention was stored (with its post); ISO 8601, UTC")
    error: str | None = Field(description="why the last attempt failed")


class PostWithThread(Strict):
    post: StoredPost
    thread: list[ThreadPost]
    notes: list[CommunityNote] = Field(description="the post's own notes, oldest first")
    mention: MentionState | None = Field(description="null unless the post mentions the assistant's handle")


REQUEST_MODELS = (FeedPost, PostBatch, NoteCreate)  # for the OpenAPI document (app.py)
STREAM_EVENT = {"schema": {"type": "object", "required": ["data"], "properties": {
    "id": {"type": "string", "description": "the post's change number: Last-Event-ID (or after) to resume from"},
    "data": {"type": "string", "contentMediaType": "application/json",
             "contentSchema": {"$ref": REF + StoredPost.__name__}}}}}

router = APIRouter(prefix="/v1/posts", tags=["Feed"])


class EventStream(Response):
    """What the stream's route answers, for the OpenAPI document (the answer itself is an SSEResponse)."""

    media_type = "text/event-stream"


def _feed(request: Request) -> Feed:
    return request.app.state.feed


def _not_found(post_id: str) -> APIError:
    return APIError(404, f"no post with id {post_id[:80]!r}", param="post_id", code="post_not_found")


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
            where = f"posts.{i}" if batch else e.field
            raise APIError(400, f"posts.{i}: {e}" if batch else str(e), param=where) from None
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


@router.get("", operation_id="listPosts", summary="The newest posts, newest first", response_model=None,
            responses={200: {"model": PostPage}, **error_responses(400)})
async def list_posts(request: Request, limit: int = Query(20, ge=1, le=MAX_LIMIT),
                     before: str | None = Query(None, max_length=64, description="a post id: the posts after it "
                                                                                  "in this order")) -> dict:
    try:
        page = await run_in_threadpool(_feed(request).recent, limit, before)
    except PostNotFound as e:
        raise APIError(400, str(e), param="before", code="post_not_found") from None
    data = [p.to_dict() for p in page.posts]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": page.has_more, "last_seq": page.last_seq}


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


STREAM_ANSWER = {"description": f"An endless stream: an event per post stored, and a comment every {HEARTBEAT:g} s.",
                 "content": {"text/event-stream": STREAM_EVENT}}
AFTER = "first send the posts added after this change number (a page's last_seq)"
LAST_EVENT_ID = "as after, and preferred to it: what EventSource sends on reconnecting"


@router.get("/stream", operation_id="streamPosts", summary="Posts as they are stored (server-sent events)",
            response_model=None, response_class=EventStream,
            responses={200: STREAM_ANSWER, **error_responses(400, 503)})
async def stream_posts(request: Request, after: int | None = Query(None, ge=0, le=2**63 - 1, description=AFTER),
                       last_event_id: Annotated[str | None, Header(description=LAST_EVENT_ID)] = None) -> Response:
    if last_event_id is not None:
        if not re.fullmatch(r"[0-9]{1,19}", last_event_id.strip()):
            raise APIError(400, f"Last-Event-ID must be a change number, not {last_event_id[:40]!r}",
                           param="Last-Event-ID")
        after = int(last_event_id.strip())
    feed = _feed(request)
    loop, woken = asyncio.get_running_loop(), asyncio.Event()

    def wake() -> None:  # from the thread that ingested
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            loop.call_soon_threadsafe(woken.set)

    try:
        sub = feed.broadcast.subscribe(wake)
    except TooManySubscribers as e:
        raise APIError(503, f"{e}; retry in a moment", code="too_many_streams", headers={"Retry-After": "5"}) from None
    return SSEResponse(_events(feed, sub, woken, after), on_close=sub.close)


async def _events(feed: Feed, sub: Subscription, woken: asyncio.Event, after: int | None) -> AsyncIterator[str]:
    """The stream of one client: the posts after `after` read from the store, then those pushed to its
    subscription, each once and in order (a post both read and pushed is sent once, by its change number); when
    the subscription dropped posts (a slow client), they are read from the store too."""
    yield f"retry: {RETRY_MS}\n\n"  # also sends the headers at once
    sent = None
    if after is not None:
        sent = min(after, await run_in_threadpool(feed.store.last_change))  # a cursor of another feed: from now
    replay_from = sent
    while not sub.closed:
        if replay_from is not None:
            batch = await run_in_threadpool(feed.added_after, replay_from, REPLAY_BATCH)
            for seq, post in batch:
                if sent is None or seq > sent:
                    yield f"id: {seq}\n" + event(post.to_dict())
                    sent = seq
            replay_from = batch[-1][0] if len(batch) == REPLAY_BATCH else None
            continue
        woken.clear()
        items, lost_after = sub.take()
        if lost_after is not None:
            replay_from = lost_after if sent is None else min(sent, lost_after)
            continue
        if not items:
            try:
                await asyncio.wait_for(woken.wait(), HEARTBEAT)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
            continue
        for seq, post in items:
            if sent is None or seq > sent:
                yield f"id: {seq}\n" + event(post.to_dict())
                sent = seq


@router.get("/{post_id}", operation_id="getPost", summary="A post, its thread and its community notes",
            response_model=None, responses={200: {"model": PostWithThread}, **error_responses(404)})
async def get_post(request: Request, post_id: str) -> dict:
    shown = await run_in_threadpool(_feed(request).permalink, post_id)
    if shown is None:
        raise _not_found(post_id)
    return shown


@router.get("/{post_id}/notes", operation_id="listNotes", summary="The community notes of a post, oldest first",
            response_model=None, responses={200: {"model": NoteList}, **error_responses(404)})
async def list_notes(request: Request, post_id: str) -> dict:
    feed = _feed(request)
    if await run_in_threadpool(feed.get, post_id) is None:
        raise _not_found(post_id)
    notes = await run_in_threadpool(feed.notes, post_id)
    return {"object": "list", "data": [n.to_dict() for n in notes]}


@router.post("/{post_id}/notes", operation_id="createNote", summary="Add a community note to a post",
             response_model=None, openapi_extra=request_body(NoteCreate),
             responses={200: {"model": CommunityNote}, **error_responses(400, 404, 413)})
async def create_note(request: Request, post_id: str) -> dict:
    req = parse_body(NoteCreate, await read_body(request, request.app.state.max_body))
    if not ID.fullmatch(post_id):
        raise _not_found(post_id)
    try:
        note = await run_in_threadpool(_feed(request).add_note, post_id, req.classification, req.summary,
                                       req.sources, req.status, req.author)
    except PostNotFound:
        raise _not_found(post_id) from None
    except FeedError as e:
        raise APIError(400, str(e), param=e.field) from None
    return note.to_dict()
