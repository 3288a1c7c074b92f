"""Routes of the conversation store (the web chat's history):

    GET    /v1/conversations                     list, newest first, without messages
    POST   /v1/conversations                     create {title?, system?, settings?, messages?}
    GET    /v1/conversations/{cid}               one conversation with its messages
    PATCH  /v1/conversations/{cid}               change title, system, settings; `messages` replaces them all
    DELETE /v1/conversations/{cid}               -> {id, object: "conversation.deleted", deleted: true}
    POST   /v1/conversations/{cid}/messages      append {role, content, meta?} -> the stored message
    GET    /v1/conversations/{cid}/export        the conversation as a JSON download

SQLite calls run in the thread pool so a slow disk never stalls streaming replies."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from colossus.serve.conversations import ConversationStore
from colossus.serve.errors import APIError, error_responses
from colossus.serve.protocol import (
    Conversation,
    ConversationDeleted,
    ConversationList,
    ConversationMessage,
    Strict,
    parse_body,
    read_body,
    request_body,
)

MAX_TITLE = 500


class StoredMessage(Strict):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    meta: dict[str, Any] | None = None
    id: str | None = None
    created: int | None = Field(None, ge=0, lt=2**63)


class ConversationCreate(Strict):
    title: str | None = Field(None, max_length=MAX_TITLE)
    system: str | None = None
    settings: dict[str, Any] | None = None
    messages: list[StoredMessage] | None = None


class ConversationPatch(ConversationCreate):
    pass


class MessageAppend(Strict):
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    meta: dict[str, Any] | None = None


REQUEST_MODELS = (ConversationCreate, ConversationPatch, MessageAppend)  # for the OpenAPI document (app.py)

router = APIRouter(prefix="/v1/conversations", tags=["Conversations"])


def _store(request: Request) -> ConversationStore:
    return request.app.state.store


def _not_found(cid: str) -> APIError:
    return APIError(404, f"no conversation with id {cid[:80]!r}", param="id", code="conversation_not_found")


def _messages(msgs: list[StoredMessage] | None) -> list[dict] | None:
    return None if msgs is None else [m.model_dump() for m in msgs]


@router.get("", operation_id="listConversations", summary="The conversations, newest first, without messages",
            response_model=None, responses={200: {"model": ConversationList}, **error_responses(400)})
async def list_conversations(request: Request, limit: int = Query(100, ge=1, le=1000)) -> dict:
    data = await run_in_threadpool(_store(request).list, limit)
    return {"object": "list", "data": data}


@router.post("", operation_id="createConversation", summary="A new conversation (the body may be empty)",
             response_model=None, openapi_extra=request_body(ConversationCreate, required=False),
             responses={200: {"model": Conversation}, **error_responses(400, 413)})
async def create_conversation(request: Request) -> dict:
    body = await read_body(request, request.app.state.max_body)
    req = parse_body(ConversationCreate, body) if body.strip() else ConversationCreate()
    return await run_in_threadpool(_store(request).create, req.title, req.system, req.settings,
                                   _messages(req.messages))


@router.get("/{cid}", operation_id="getConversation", summary="One conversation with its messages",
            response_model=None, responses={200: {"model": Conversation}, **error_responses(404)})
async def get_conversation(request: Request, cid: str) -> dict:
    conv = await run_in_threadpool(_store(request).get, cid)
    if conv is None:
        raise _not_found(cid)
    return conv


@router.patch("/{cid}", operation_id="updateConversation",
              summary="Change the given fields; messages, when given, replace them all", response_model=None,
              openapi_extra=request_body(ConversationPatch),
              responses={200: {"model": Conversation}, **error_responses(400, 404, 413)})
async def patch_conversation(request: Request, cid: str) -> dict:
    req = parse_body(ConversationPatch, await read_body(request, request.app.state.max_body))
    given = req.model_fields_set

    def update():
        return _store(request).update(
            cid, title=req.title, system=req.system, clear_system="system" in given and req.system is None,
            settings=req.settings, messages=_messages(req.messages))

    conv = await run_in_threadpool(update)
    if conv is None:
        raise _not_found(cid)
    return conv


@router.delete("/{cid}", operation_id="deleteConversation", summary="Delete a conversation and its messages",
               response_model=None, responses={200: {"model": ConversationDeleted}, **error_responses(404)})
async def delete_conversation(request: Request, cid: str) -> dict:
    if not await run_in_threadpool(_store(request).delete, cid):
        raise _not_found(cid)
    return {"id": cid, "object": "conversation.deleted", "deleted": True}


@router.post("/{cid}/messages", operation_id="appendMessage", summary="Append a message; answers the stored message",
             response_model=None, openapi_extra=request_body(MessageAppend),
             responses={200: {"model": ConversationMessage}, **error_responses(400, 404, 413)})
async def append_message(request: Request, cid: str) -> dict:
    req = parse_body(MessageAppend, await read_body(request, request.app.state.max_body))
    msg = await run_in_threadpool(_store(request).append, cid, req.model_dump())
    if msg is None:
        raise _not_found(cid)
    return msg


@router.get("/{cid}/export", operation_id="exportConversation", summary="The conversation as a JSON download",
            response_model=None,
            responses={200: {"model": Conversation, "headers": {"Content-Disposition": {
                "description": 'attachment; filename="ID.json"', "schema": {"type": "string"}}}},
                **error_responses(404)})
async def export_conversation(request: Request, cid: str) -> JSONResponse:
    conv = await run_in_threadpool(_store(request).get, cid)
    if conv is None:
        raise _not_found(cid)
    return JSONResponse(conv, headers={"Content-Disposition": f'attachment; filename="{cid}.json"'})
