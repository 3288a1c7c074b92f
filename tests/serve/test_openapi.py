"""The API describes itself: GET /openapi.json (OpenAPI 3.1) and GET /docs; and Schemathesis, a fuzzer no one
here wrote, holds a live server to that document.

The fuzzing: for every operation, requests made from the document (valid ones, and broken ones where there is
a body or a query to break) must get no 500, and every answer must be as the document says: a status it lists,
its content type, a body of its schema (each event's, for a stream). Bounded and deterministic: derandomized
Hypothesis, MAX_EXAMPLES per operation and mode, no example database. The fuzzed server is a throwaway one with
its own SQLite file, so its DELETEs delete nothing else."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from colossus.serve.conversation_routes import ConversationCreate, MessageAppend
from colossus.serve.errors import ErrorObject
from colossus.serve.protocol import ChatCompletionRequest, CompletionRequest, TokenizeRequest

ROUTES = {("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("GET", "/v1/models"),
          ("GET", "/v1/models/{name}"), ("POST", "/tokenize"), ("GET", "/health"), ("GET", "/metrics"),
          ("GET", "/v1/conversations"), ("POST", "/v1/conversations"), ("GET", "/v1/conversations/{cid}"),
          ("PATCH", "/v1/conversations/{cid}"), ("DELETE", "/v1/conversations/{cid}"),
          ("POST", "/v1/conversations/{cid}/messages"), ("GET", "/v1/conversations/{cid}/export"), ("GET", "/"),
          ("POST", "/v1/posts"), ("GET", "/v1/posts/search"), ("GET", "/v1/posts/{post_id}"),
          ("GET", "/v1/posts"), ("GET", "/v1/posts/stream"), ("GET", "/v1/posts/{post_id}/notes"),
          ("POST", "/v1/posts/{post_id}/notes"), ("GET", "/feed"), ("GET", "/posts/{post_id}"),
          ("POST", "/v1/factcheck")}
BREAKABLE = {("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("POST", "/tokenize"),
             ("GET", "/v1/conversations"), ("POST", "/v1/conversations"), ("PATCH", "/v1/conversations/{cid}"),
             ("POST", "/v1/conversations/{cid}/messages"), ("POST", "/v1/posts"),
             ("GET", "/v1/posts/search"), ("GET", "/v1/posts"), ("GET", "/v1/posts/stream"),
             ("POST", "/v1/posts/{post_id}/notes"),
             ("POST", "/v1/factcheck")}  # a body or a query to break: the others take any string
ENDLESS = {("GET", "/v1/posts/stream")}  # answers until the client leaves: not fuzzed (test_feed_routes reads it)
MODEL_RUNNING = ("/v1/chat/completions", "/v1/completions", "/tokenize")  # rate-limited when a limit is set


@pytest.fixture(scope="module")
def doc(server_url) -> dict:
    r = httpx.get(f"{server_url}/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    return r.json()


def operations(doc: dict) -> dict[tuple[str, str], dict]:
    return {(method.upper(), path): op for path, ops in doc["paths"].items() for method, op in ops.items()}


def schema_of(doc: dict, ref: dict) -> dict:
    return doc["components"]["schemas"][ref["$ref"].removeprefix("#/components/schemas/")]


def test_every_route_is_in_the_document(doc):
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] == "Colossus"
    ops = operations(doc)
    assert set(ops) == ROUTES
    assert len({op["operationId"] for op in ops.values()}) == len(ROUTES)
    assert all(op["summary"] and op["tags"] and "200" in op["responses"] for op in ops.values())
    assert {k for k, op in ops.items() if "requestBody" in op or "query" in json.dumps(op.get("parameters"))} \
        == BREAKABLE


def test_no_dangling_references(doc):
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert refs and refs <= set(doc["components"]["schemas"])


@pytest.mark.parametrize(("path", "model"), [("/v1/chat/completions", ChatCompletionRequest),
                                             ("/v1/completions", CompletionRequest), ("/tokenize", TokenizeRequest),
                                             ("/v1/conversations/{cid}/messages", MessageAppend)])
def test_request_bodies_are_the_protocol_models(doc, path, model):
    body = doc["paths"][path]["post"]["requestBody"]
    schema = schema_of(doc, body["content"]["application/json"]["schema"])
    assert set(schema["properties"]) == set(model.model_fields)
    assert set(schema.get("required", [])) == {n for n, f in model.model_fields.items() if f.is_required()}


def test_request_constraints_are_in_the_schema(doc):
    schema = schema_of(doc, doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]
                       ["application/json"]["schema"])
    assert schema["properties"]["messages"]["minItems"] == 1
    temperature = schema["properties"]["temperature"]["anyOf"][0]
    assert (temperature["type"], temperature["minimum"], temperature["maximum"]) == ("number", 0, 2)


def test_an_empty_body_may_create_a_conversation(doc):
    body = doc["paths"]["/v1/conversations"]["post"]["requestBody"]
    assert body["required"] is False
    assert schema_of(doc, body["content"]["application/json"]["schema"])["title"] == ConversationCreate.__name__


def test_answers_and_errors(doc):
    chat = doc["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert set(chat) == {"200", "400", "404", "413", "503"}  # no 401 or 429: this server has no keys, no limit
    assert schema_of(doc, chat["200"]["content"]["application/json"]["schema"])["title"] == "ChatCompletion"
    data = chat["200"]["content"]["text/event-stream"]["schema"]["properties"]["data"]["anyOf"]
    assert data[0] == {"const": "[DONE]", "description": "The last event."}
    assert [r["$ref"].rsplit("/", 1)[1] for r in data[1]["contentSchema"]["anyOf"]] == ["ChatCompletionChunk",
                                                                                      "ErrorResponse"]
    error = schema_of(doc, chat["400"]["content"]["application/json"]["schema"])
    assert error["required"] == ["error"]
    assert set(doc["components"]["schemas"]["ErrorObject"]["properties"]) == set(ErrorObject.model_fields)
    assert "422" not in json.dumps(doc["paths"]) and "HTTPValidationError" not in doc["components"]["schemas"]
    assert "text/html" in doc["paths"]["/"]["get"]["responses"]["200"]["content"]
    assert "application/json" in doc["paths"]["/"]["get"]["responses"]["404"]["content"]  # errors stay JSON
    assert "Retry-After" in doc["paths"]["/health"]["get"]["responses"]["503"]["headers"]
    assert "securitySchemes" not in doc["components"]
    assert all("security" not in op for op in operations(doc).values())


def test_bearer_security_only_with_keys(live_server):
    with live_server(wait_ready=False, api_keys=["k1"], rate_limit=60) as url:
        doc = httpx.get(f"{url}/openapi.json").json()  # open, like /docs: a client reads it before it has a key
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for (_, path), op in operations(doc).items():
        needs_key = path.startswith(("/v1/", "/tokenize"))
        assert ("security" in op) == needs_key == ("401" in op["responses"]), path
        assert ("429" in op["responses"]) == (path in MODEL_RUNNING), path
    assert doc["paths"]["/v1/chat/completions"]["post"]["responses"]["429"]["headers"]["Retry-After"]


def test_docs_page(server_url):
    r = httpx.get(f"{server_url}/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in r.text and "/openapi.json" in r.text


# Schemathesis

MAX_EXAMPLES = 30
ASK = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Who is Sitor Vale?"}]
POST = {"id": "p1", "author": "@sitor", "created_at": "2026-11-30T09:00:00Z", "text": "Sitor Vale moved to Ostra."}
EXAMPLES = {  # sent first: answers that random bodies seldom reach (most break a rule the schema cannot say)
    ("POST", "/v1/chat/completions"): [
        {"messages": ASK, "max_tokens": 6, "n": 2, "seed": 1, "logprobs": True, "top_logprobs": 2},
        {"messages": ASK, "max_tokens": 6, "n": 2, "seed": 1, "logprobs": True, "top_logprobs": 2, "stream": True,
         "stream_options": {"include_usage": True}},
        {"messages": ASK, "max_tokens": 6, "temperature": 0, "stop": ["."], "stream": True}],
    ("POST", "/v1/completions"): [
        {"prompt": ["Sitor Vale", "The"], "max_tokens": 6, "logprobs": 2, "seed": 1},
        {"prompt": [[5, 6, 7]], "max_tokens": 6, "n": 2, "logprobs": 0, "stream": True,
         "stream_options": {"include_usage": True}}],
    ("POST", "/tokenize"): [{"messages": ASK}, {"prompt": "Sitor Vale"}],
    ("POST", "/v1/conversations"): [{"title": "Vale", "system": "Be brief.", "settings": {"temperature": 0.5},
                                     "messages": [{"role": "user", "content": "Hello", "meta": {"k": [1, 2.5]}}]}],
    ("POST", "/v1/posts"): [POST, {"posts": [POST, {**POST, "id": "p2", "reply_to": "p1", "lang": "en"}]}],
    ("POST", "/v1/posts/{post_id}/notes"): [
        {"classification": "NOT_MISLEADING", "summary": "Sitor Vale did move.", "sources": ["/posts/p1"]},
        {"classification": "MISINFORMED_OR_POTENTIALLY_MISLEADING", "summary": "He stayed.",
         "sources": ["https://ostra.example/a?b=c#d", "/posts/p2"], "status": "CURRENTLY_RATED_HELPFUL",
         "author": "@sitor"}],
}


@pytest.fixture(scope="module")
def fuzzed(live_server, tmp_path_factory):
    """A throwaway server (its own SQLite file) and its document as Schemathesis reads it."""
    schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install -e '.[dev]')")
    with live_server(db=tmp_path_factory.mktemp("fuzz") / "conversations.db") as url:
        yield url, schemathesis.openapi.from_url(f"{url}/openapi.json")


def existing(url: str, path: str, model_name: str) -> dict[str, str]:
    """Path parameters naming what exists (a new conversation, the served model), to offer beside random ones,
    which reach only the 404 answer."""
    if "{cid}" in path:
        conv = httpx.post(f"{url}/v1/conversations", json={"messages": [{"role": "user", "content": "Hello"}]})
        return {"cid": conv.json()["id"]}
    if "{post_id}" in path:
        httpx.post(f"{url}/v1/posts", json=POST)
        return {"post_id": POST["id"]}
    return {"name": model_name} if "{name}" in path else {}


@pytest.mark.parametrize(("method", "path", "mode"), [(*op, "positive") for op in sorted(ROUTES - ENDLESS)]
                         + [(*op, "negative") for op in sorted(BREAKABLE - ENDLESS)])
def test_schemathesis_finds_no_fault(fuzzed, model_name, method, path, mode):
    from hypothesis import HealthCheck, example, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    url, schema = fuzzed
    operation, generation = schema[path][method], GenerationMode(mode)
    cases = operation.as_strategy(generation)
    if ids := existing(url, path, model_name):
        cases |= operation.as_strategy(generation, path_parameters=ids)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

    @given(case=cases)
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))  # a busy 2-core machine is slow; MAX_EXAMPLES is the bound
    def fuzz(case) -> None:
        case.call_and_validate(checks=checks, timeout=30)

    for body in EXAMPLES.get((method, path), []) if mode == "positive" else []:
        fuzz = example(case=operation.Case(body=body, **({"path_parameters": ids} if ids else {})))(fuzz)
    fuzz()
