"""Request bodies of the OpenAI-compatible API, in the order of the OpenAI API reference, and how a body
is read: size-limited, strict UTF-8 JSON, then validated strictly (a string is not a number, 1 is not
true; 3.0 is the integer 3, as JSON Schema reads it) so a wrong type or an out-of-range value answers 400
naming the field.

A null field means its default, as in the OpenAI API. Extensions beyond OpenAI (as in vLLM): top_k,
min_p, repetition_penalty, ignore_eos. Features the engine does not have (the deprecated functions,
logit_bias, response_format other than text, echo, suffix) are refused with 400 instead of being silently
ignored. Client tools (tools, tool_choice, parallel_tool_calls) are checked here: a function's name as OpenAI
allows it, once each; a named tool_choice among them; tool messages answer a tool_call_id.

The response bodies follow, in the same order, then this server's own (tokenize, conversations, health).
They document what the routes write (completions.py and conversations.py build the dicts): the OpenAPI
schema is made from them, and no route validates its answer through them."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from colossus.assistant.search import DEFAULT_RESULTS, MODES, SearchParameters, end_of_day
from colossus.feed.post import FeedError, handle, parse_time
from colossus.serve.errors import REF, APIError, ErrorResponse

MAX_N = 16
MAX_HANDLES = 10  # xAI's bound on included_x_handles and excluded_x_handles
MAX_SEARCH_RESULTS = 50  # xAI's bound on max_search_results
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_STOP = 4
INT64 = 2**63


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


class TextPart(Strict):
    type: Literal["text"]
    text: str


class FunctionCall(Strict):
    name: str
    arguments: str = Field(description="JSON, as the model wrote it.")


class MessageToolCall(Strict):
    """A call an earlier assistant message made, sent back with the conversation."""

    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(Strict):
    """developer is OpenAI's newer name for system; content may be a list of text parts, and null in an assistant
    message that only calls tools. A tool message answers the call of its tool_call_id."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)

    def check(self, where: str) -> None:
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise APIError(400, f"{where}.content: a {self.role} message needs content (only an assistant message "
                           f"with tool_calls may leave it out)", param=f"{where}.content")
        if self.tool_calls and self.role != "assistant":
            raise APIError(400, f"{where}.tool_calls: only an assistant message has tool_calls",
                           param=f"{where}.tool_calls")
        if self.role == "tool" and not self.tool_call_id:
            raise APIError(400, f"{where}.tool_call_id: a tool message names the call it answers",
                           param=f"{where}.tool_call_id")


FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what OpenAI accepts
TOOL_CHOICES = ("none", "auto", "required")


class FunctionDefinition(Strict):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="A JSON Schema object; none: no arguments.")
    strict: bool | None = None


class Tool(Strict):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(Strict):
    name: str


class NamedToolChoice(Strict):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(Strict):
    include_usage: bool | None = None


class SamplingFields(Strict):
    """Fields shared by both endpoints."""

    model: str | None = None
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    max_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(None, ge=1, le=MAX_N)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = Field(None, ge=-INT64, lt=INT64)
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    user: str | None = None
    # extensions
    top_k: int | None = Field(None, ge=-1)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, ge=0.1, le=10)  # 0.1 pulls toward repeats as hard as 10 away
    ignore_eos: bool | None = None

    def check_common(self) -> None:
        if self.logit_bias:
            raise APIError(400, "logit_bias is not supported by this server", param="logit_bias")
        if self.stream_options is not None and not self.stream:
            raise APIError(400, "stream_options is only allowed when stream is true", param="stream_options")
        stops = self.stop_list()
        if len(stops) > MAX_STOP:
            raise APIError(400, f"stop: at most {MAX_STOP} stop sequences, not {len(stops)}", param="stop")
        if any(s == "" for s in stops):
            raise APIError(400, "stop: a stop sequence cannot be empty", param="stop")

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class SearchSource(Strict):
    """One of xAI's Live Search sources. This server searches its own feed of posts: type "x" only."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
    type: str
    included_x_handles: list[str] | None = Field(None, max_length=MAX_HANDLES)
    excluded_x_handles: list[str] | None = Field(None, max_length=MAX_HANDLES)


class SearchParametersField(Strict):
    """xAI's Live Search `search_parameters`. Unknown fields are refused (400 naming them), not ignored: a
    misspelt filter would otherwise widen a search without a word."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
    mode: str | None = Field(None, description='"off", "auto" (the default) or "on"')
    from_date: str | None = Field(None, description="YYYY-MM-DD (UTC), inclusive")
    to_date: str | None = Field(None, description="YYYY-MM-DD (UTC), inclusive")
    max_search_results: int | None = Field(None, ge=1, le=MAX_SEARCH_RESULTS,
                                           description="posts a search returns at most (default 3 here)")
    return_citations: bool | None = None
    sources: list[SearchSource] | None = Field(None, max_length=4)

    def parsed(self) -> SearchParameters:
        """The checked parameters, or APIError 400 naming the field."""
        if self.mode is not None and self.mode not in MODES:
            raise APIError(400, f"search_parameters.mode must be one of {', '.join(MODES)}, not {self.mode[:40]!r}",
                           param="search_parameters.mode")
        dates = {}
        for name in ("from_date", "to_date"):
            value = getattr(self, name)
            if value is None:
                continue
            if not DATE.match(value):
                raise APIError(400, f"search_parameters.{name} must be a date as YYYY-MM-DD, not {value[:40]!r}",
                               param=f"search_parameters.{name}")
            try:
                dates[name] = parse_time(value, name)
            except FeedError as e:
                raise APIError(400, f"search_parameters.{name}: {e}", param=f"search_parameters.{name}") from None
        if "to_date" in dates:
            dates["to_date"] = end_of_day(dates["to_date"], self.to_date or "")
        if len(dates) == 2 and dates["from_date"] > dates["to_date"]:
            raise APIError(400, "search_parameters.from_date is after to_date", param="search_parameters.from_date")
        included, excluded = [], []
        for i, src in enumerate(self.sources or []):
            where = f"search_parameters.sources.{i}"
            if src.type != "x":
                raise APIError(400, f'{where}.type: this server searches its own feed of posts, so the only source '
                               f'type is "x", not {src.type[:40]!r}', param=f"{where}.type")
            if src.included_x_handles and src.excluded_x_handles:
                raise APIError(400, f"{where}: give included_x_handles or excluded_x_handles, not both",
                               param=f"{where}.included_x_handles")
            for name, out in (("included_x_handles", included), ("excluded_x_handles", excluded)):
                for h in getattr(src, name) or []:
                    try:
                        out.append(handle(h, f"{where}.{name}"))
                    except FeedError as e:
                        raise APIError(400, str(e), param=f"{where}.{name}") from None
        return SearchParameters(
            mode=self.mode or "auto", from_date=dates.get("from_date"), to_date=dates.get("to_date"),
            max_search_results=self.max_search_results or DEFAULT_RESULTS,
            return_citations=True if self.return_citations is None else self.return_citations,
            included_handles=tuple(included), excluded_handles=tuple(excluded))


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool | None = None
    max_completion_tokens: int | None = Field(None, ge=1)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: str | dict[str, Any] | None = Field(
        None, description='"none", "auto" (the default with tools), "required", or {"type": "function", "function": '
        '{"name": ...}}')
    parallel_tool_calls: bool | None = Field(None, description="false: at most one call in the reply")
    functions: list[Any] | None = None
    search_parameters: SearchParametersField | None = None

    def check(self) -> None:
        self.check_common()
        if self.search_parameters is not None:
            self.search_parameters.parsed()
        if self.functions:
            raise APIError(400, "functions (deprecated by OpenAI) is not supported by this server; use tools",
                           param="functions")
        for i, m in enumerate(self.messages):
            m.check(f"messages.{i}")
        self.check_tools()
        if self.response_format is not None and self.response_format.get("type", "text") != "text":
            raise APIError(400, "response_format: only {\"type\": \"text\"} is supported", param="response_format")
        if self.top_logprobs is not None and not self.logprobs:
            raise APIError(400, "top_logprobs requires logprobs to be true", param="top_logprobs")


    def check_tools(self) -> None:
        names = set()
        for i, t in enumerate(self.tools or []):
            name = t.function.name
            if not FUNCTION_NAME.match(name):
                raise APIError(400, f"tools.{i}.function.name: {name[:80]!r} is not a function name (letters, digits, "
                               f"_ and -, at most 64)", param=f"tools.{i}.function.name")
            if name in names:
                raise APIError(400, f"tools.{i}.function.name: {name!r} is given twice",
                               param=f"tools.{i}.function.name")
            names.add(name)
            if t.function.parameters is not None and t.function.parameters.get("type", "object") != "object":
                raise APIError(400, f"tools.{i}.function.parameters: a JSON Schema of type object",
                               param=f"tools.{i}.function.parameters")
        choice = self.tool_choice
        if isinstance(choice, dict):
            try:
                choice = self.tool_choice = NamedToolChoice.model_validate(choice)
            except ValidationError:
                raise APIError(400, 'tool_choice: a named choice is {"type": "function", "function": {"name": ...}}',
                               param="tool_choice") from None
        if isinstance(choice, str) and choice not in TOOL_CHOICES:
            raise APIError(400, f"tool_choice must be one of {', '.join(TOOL_CHOICES)} or a named function, not "
                           f"{choice[:40]!r}", param="tool_choice")
        if choice is not None and choice != "none" and not self.tools:
            raise APIError(400, "tool_choice is only allowed when tools are given", param="tool_choice")
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise APIError(400, f"tool_choice: no tool named {choice.function.name[:80]!r} in tools",
                           param="tool_choice.function.name")

    def tool_mode(self) -> str | None:
        """None (no tools offered: none given, or tool_choice none), "auto", "required" or a function's name."""
        if not self.tools or self.tool_choice == "none":
            return None
        if isinstance(self.tool_choice, NamedToolChoice):
            return self.tool_choice.function.name
        return self.tool_choice or "auto"


class CompletionRequest(SamplingFields):
    prompt: str | list[str] | list[int] | list[list[int]]
    best_of: int | None = Field(None, ge=1)
    echo: bool | None = None
    logprobs: int | None = Field(None, ge=0, le=20)
    suffix: str | None = None

    def check(self) -> None:
        self.check_common()
        if self.echo:
            raise APIError(400, "echo is not supported by this server", param="echo")
        if self.suffix:
            raise APIError(400, "suffix is not supported by this server", param="suffix")
        if self.best_of is not None and self.best_of != (self.n or 1):
            raise APIError(400, "best_of different from n is not supported by this server", param="best_of")
        if isinstance(self.prompt, list) and not self.prompt:
            raise APIError(400, "prompt: an empty list has nothing to complete", param="prompt")


class TokenizeRequest(Strict):
    """Give exactly one of prompt (raw text, which starts a document) or messages (rendered by the chat template)."""

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None

    def check(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise APIError(400, "give exactly one of prompt (a string) or messages (a list)", param="prompt")
        if self.messages is not None and not self.messages:
            raise APIError(400, "messages: List should have at least 1 item", param="messages")


# Response bodies

FinishReason = Literal["stop", "length", "tool_calls", "abort"]
FINISH = ("stop: the model ended its turn or a stop sequence matched; length: max_tokens or the context was "
          "reached; tool_calls: the reply calls the client's tools; abort (not in the OpenAI API, as in vLLM): the "
          "server stopped the request while shutting down")


class TopLogprob(BaseModel):
    token: str
    logprob: float = Field(description="-9999.0 for a token the sampler could never pick (JSON has no -Infinity).")
    bytes: list[int] | None = Field(description="The token's UTF-8 bytes.")


class ChatCompletionTokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(description="The top_logprobs most likely tokens, most likely first.")


class ChoiceLogprobs(BaseModel):
    content: list[ChatCompletionTokenLogprob] | None
    refusal: list[ChatCompletionTokenLogprob] | None


class PromptTokensDetails(BaseModel):
    cached_tokens: int = Field(description="Prompt tokens whose KV came from the prefix cache.")


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = Field(description="Generated tokens, the end-of-turn token included.")
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


class ChatCompletionMessageToolCall(BaseModel):
    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None = Field(description="Null when the reply only calls tools.")
    refusal: str | None
    tool_calls: list[ChatCompletionMessageToolCall] | None = Field(
        None, description="The client's tools the reply calls (only when the request gave tools).")


class ChatCompletionChoice(BaseModel):
    index: int
    message: ChatCompletionMessage
    logprobs: ChoiceLogprobs | None = Field(description="Null unless the request set logprobs.")
    finish_reason: FinishReason = Field(description=FINISH)


class ChatCompletion(BaseModel):
    """The answer of POST /v1/chat/completions without stream."""

    id: str
    object: Literal["chat.completion"]
    created: int = Field(description="Unix seconds.")
    model: str
    system_fingerprint: str = Field(description="Changes when the weights or the config change.")
    choices: list[ChatCompletionChoice]
    usage: CompletionUsage


class ChoiceDeltaFunction(BaseModel):
    name: str | None = Field(None, description="In the call's first delta.")
    arguments: str = Field(description="A fragment: the call's deltas put together are its arguments.")


class ChoiceDeltaToolCall(BaseModel):
    """The first delta of a call has its index, id, type and name (arguments ""); the next ones only its index and
    fragments of arguments."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChoiceDeltaFunction


class ChoiceDelta(BaseModel):
    role: Literal["assistant"] | None = Field(None, description="In the first chunk of each choice.")
    content: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None


class ChatCompletionChunkChoice(BaseModel):
    index: int
    delta: ChoiceDelta = Field(description="Empty in the chunk that carries finish_reason.")
    logprobs: ChoiceLogprobs | None
    finish_reason: FinishReason | None = Field(description="Null until the choice's last chunk. " + FINISH)


class ChatCompletionChunk(BaseModel):
    """One event of POST /v1/chat/completions with stream: true. With stream_options.include_usage every chunk
    has usage null, and one last chunk before [DONE] has no choices and the usage of the whole request."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    system_fingerprint: str
    choices: list[ChatCompletionChunkChoice]
    usage: CompletionUsage | None = Field(None, description="Only with stream_options.include_usage.")


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None = Field(description="Null when logprobs is 0.")
    text_offset: list[int] = Field(description="Each token's offset in characters in the choice's text.")


class CompletionChoice(BaseModel):
    index: int = Field(description="prompt index x n + choice index.")
    text: str
    logprobs: CompletionLogprobs | None = Field(description="Null unless the request set logprobs.")
    finish_reason: FinishReason = Field(description=FINISH)


class Completion(BaseModel):
    """The answer of POST /v1/completions without stream."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    system_fingerprint: str
    choices: list[CompletionChoice]
    usage: CompletionUsage


class CompletionChunkChoice(CompletionChoice):
    finish_reason: FinishReason | None = Field(description="Null until the choice's last chunk. " + FINISH)


class CompletionChunk(Completion):
    """One event of POST /v1/completions with stream: true (usage as in ChatCompletionChunk)."""

    choices: list[CompletionChunkChoice]
    usage: CompletionUsage | None = Field(None, description="Only with stream_options.include_usage.")


class Model(BaseModel):
    id: str
    object: Literal["model"]
    created: int = Field(description="When the weights were written, in Unix seconds.")
    owned_by: str
    max_model_len: int = Field(description="The context in tokens (an extension, as in vLLM).")


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[Model]


class TokenizeResponse(BaseModel):
    tokens: list[int]
    count: int
    max_model_len: int


ConversationRole = Literal["system", "user", "assistant", "tool"]


class ConversationMessage(BaseModel):
    id: str
    role: ConversationRole
    content: str
    created: int
    meta: dict[str, Any] | None


class ConversationFields(BaseModel):
    id: str
    object: Literal["conversation"]
    title: str
    created: int
    updated: int
    system: str | None
    settings: dict[str, Any]


class Conversation(ConversationFields):
    messages: list[ConversationMessage]


class ConversationSummary(ConversationFields):
    """A conversation in a list: without its messages."""

    message_count: int


class ConversationList(BaseModel):
    object: Literal["list"]
    data: list[ConversationSummary] = Field(description="Most recently changed first.")


class ConversationDeleted(BaseModel):
    id: str
    object: Literal["conversation.deleted"]
    deleted: Literal[True]


class Health(BaseModel):
    status: Literal["ok"]
    model: str


class HealthUnavailable(ErrorResponse):
    """While the model loads, or after its load failed."""

    status: Literal["loading", "failed"]


# OpenAPI: the routes read their bodies with read_body and parse_body, so FastAPI does not know the request models;
# these attach them (app.openapi_document puts the models into the components)


def request_body(model: type[BaseModel], required: bool = True) -> dict:
    """openapi_extra of a route whose body is model, as JSON."""
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": {"$ref": REF + model.__name__}}}}}


def event_stream(chunk: type[BaseModel]) -> dict:
    """The text/event-stream media type of a streamed answer. Its schema is that of one event, as OpenAPI 3.1
    leaves it (3.2's itemSchema, which FastAPI writes for its own streams, is no 3.1 field): the data of each
    event is a chunk as JSON, or an error body when generation fails midway, and the last event's is [DONE]."""
    data = {"type": "string", "contentMediaType": "application/json",
            "contentSchema": {"anyOf": [{"$ref": REF + chunk.__name__}, {"$ref": REF + ErrorResponse.__name__}]}}
    return {"schema": {"type": "object", "required": ["data"], "properties": {
        "data": {"anyOf": [{"const": "[DONE]", "description": "The last event."}, data]}}}}


M = TypeVar("M", bound=BaseModel)
TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def parse_body(model: type[M], raw: bytes) -> M:
    """bytes -> a validated request, or APIError 400 naming what is wrong."""
    return validate_body(model, parse_json(raw))


def validate_body(model: type[M], obj: Any) -> M:
    """A parsed JSON body -> a validated request, or APIError 400 naming what is wrong."""
    if not isinstance(obj, dict):
        raise APIError(400, f"the request body must be a JSON object, not {type(obj).__name__}")
    try:
        req = model.model_validate(obj)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        parts = [str(p) for p in err["loc"] if not (isinstance(p, str) and (p in TYPE_TAGS or "[" in p))]
        param = ".".join(parts) or None
        raise APIError(400, f"{param}: {err['msg']}" if param else err["msg"], param=param) from None
    check = getattr(req, "check", None)
    if check is not None:
        check()
    return req


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise APIError(400, "the request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise APIError(400, f"the request body is not valid UTF-8 (byte {e.start})") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant, parse_float=_number)
    except OutOfRange as e:
        raise APIError(400, f"the request body has a number out of range: {e}") from None
    except json.JSONDecodeError as e:
        raise APIError(400, f"the request body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") \
            from None
    except RecursionError:
        raise APIError(400, "the request body is nested too deeply") from None
    except ValueError as e:  # NaN / Infinity, or an integer too long to convert
        raise APIError(400, f"the request body is not valid JSON: {e}") from None
    if LONE_SURROGATE_ESCAPE.search(text):
        _check_surrogates(obj)
    return obj


LONE_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # a cheap test before walking the whole body


def _check_surrogates(obj: Any) -> None:
    """JSON may escape half of a UTF-16 pair ("\\ud800"); that is no text: the tokenizer and SQLite would fail."""
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                raise APIError(400, "the request body has a lone UTF-16 surrogate escape; that is not text") \
                    from None
        elif isinstance(x, dict):
            stack += list(x.keys()) + list(x.values())
        elif isinstance(x, list):
            stack += x


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class OutOfRange(ValueError):
    pass


def _number(text: str) -> float | int:
    """A JSON number written with a fraction or an exponent. 1e400 is valid JSON but no double: float() makes it
    infinite, which a free-form field (settings, meta) would store as Infinity, then answer as null, or fail to
    write back at all. 3.0 is the integer 3, as JSON Schema reads it: an integer field takes it (and a number
    field an integer); 3.5 stays a float."""
    x = float(text)
    if math.isinf(x):
        raise OutOfRange(f"{text[:40]} is beyond the range of a double")
    return int(x) if x.is_integer() and abs(x) < INT64 else x


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes limit bytes, whether Content-Length says so or not."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise APIError(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise APIError(413, f"the request body of {int(declared)} bytes exceeds the limit of {limit} bytes",
                           code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"the request body exceeds the limit of {limit} bytes", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)
