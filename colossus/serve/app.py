"""The HTTP server: an OpenAI-compatible API, the conversation store, the feed of posts and the web app.

    colossus serve --model runs/latest [--port 8000] [--api-key KEY] [--db PATH] [--max-batch N] [--handle NAME]
    curl localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\
         -d '{"messages": [{"role": "user", "content": "Who is Sitor Vale?"}]}'

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, POST /tokenize, GET /health
(503 until the model is loaded), GET /metrics (Prometheus), /v1/conversations... (conversation_routes),
/v1/posts... (feed_routes: posts, search, the live stream, community notes), and the web app's pages, one
page (static/index.html) whose script shows the view of its path: GET / (the chat), GET /feed (the live
feed and its search) and GET /posts/{post_id} (a post's permalink: its thread, notes and a fact-check); and
/static/... The model loads in a background thread, so /health answers at once; once it is loaded, a
background task answers the feed's posts that mention the assistant's handle (colossus.assistant.mentions).
Routes stay thin: the logic is in completions.py, the request and response bodies in protocol.py.

The API describes itself: GET /openapi.json (OpenAPI 3.1) and GET /docs (Swagger UI). The routes read their
bodies themselves (read_body and parse_body: size limit, strict JSON, errors naming the field), so their request
models are attached with openapi_extra and openapi_document() puts them into the components; the document
follows the settings: with keys, a bearer scheme and 401; with a rate limit, 429."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.concurrency import run_in_threadpool

from colossus.errors import ColossusError
from colossus.feed.feed import Feed
from colossus.feed.mentions import DEFAULT_HANDLE
from colossus.feed.post import DEFAULT_FEED
from colossus.model import resolve_model
from colossus.serve.auth import PROTECTED, RATE_LIMITED, AccessMiddleware
from colossus.serve.conversation_routes import REQUEST_MODELS as CONVERSATION_REQUESTS
from colossus.serve.conversation_routes import router as conversation_router
from colossus.serve.conversations import DEFAULT_DB, ConversationStore
from colossus.serve.errors import REF, APIError, ErrorResponse, error_responses, install_error_handlers
from colossus.serve.factcheck_routes import REQUEST_MODELS as FACTCHECK_REQUESTS
from colossus.serve.factcheck_routes import router as factcheck_router
from colossus.serve.feed_routes import REQUEST_MODELS as FEED_REQUESTS
from colossus.serve.feed_routes import router as feed_router
from colossus.serve.metrics import Metrics, MetricsMiddleware
from colossus.serve.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionChunk,
    CompletionRequest,
    Health,
    HealthUnavailable,
    Model,
    ModelList,
    TokenizeRequest,
    TokenizeResponse,
    event_stream,
    parse_body,
    read_body,
    request_body,
)

log = logging.getLogger("colossus.serve")
STATIC_DIR = Path(__file__).parent / "static"


@dataclass
class ServeConfig:
    model: Path
    """Model directory, or a run directory holding one in model/."""
    api_keys: list[str] = field(default_factory=list)
    """Bearer keys accepted on /v1/* and /tokenize; empty: an open server."""
    db: Path = DEFAULT_DB
    """SQLite file of the conversations."""
    feed: Path = DEFAULT_FEED
    """Directory of the feed of posts (its SQLite store and search index)."""
    max_batch: int = 32
    """Requests decoded together by the engine."""
    max_queue: int = 256
    """Requests waiting beyond the batch before new ones answer 503."""
    rate_limit: float | None = None
    """Requests a minute per key on the generation routes; None: no limit."""
    max_body: int = 1 << 20
    """Largest request body in bytes (413 beyond)."""
    device: str = "cpu"
    weights: str = "float32"
    """Precision of the matmul weights: float32 (the model as trained) or bfloat16 (rounded: half the bytes
    to read each step, up to about twice as fast decoding on CPU; arithmetic stays float32)."""
    kernel: str = "auto"
    """Forward step: auto (one C call on CPU when a C compiler is found), c (that, or fail) or torch."""
    kernel_threads: int | None = None
    """Threads of the C step; None: the cores, up to 8."""
    kv_dtype: str | None = None
    """What the KV cache stores: float32 or bfloat16 (half the memory, and half the bytes attention reads
    each step); None: the weights' precision."""
    cuda_graphs: bool = True
    """On a GPU, replay decode steps from CUDA graphs captured at start; False: op by op (`--eager`)."""
    max_model_len: int | None = None
    """Longest prompt plus answer (vLLM's --max-model-len); None: the model's context, shortened when the KV cache
    of max_batch such requests would not fit in a quarter of the machine's memory (a log line says so)."""
    handle: str = DEFAULT_HANDLE
    """The assistant's handle on the feed: a post that mentions it (@colossus) gets a reply in its thread."""


def model_name(model_path: Path) -> str:
    """runs/NAME/model -> NAME; a GGUF file -> its name without .gguf; any other directory -> its own name."""
    d = model_path.resolve()
    if d.suffix == ".gguf":
        return d.stem
    return d.parent.name if d.name == "model" else d.name


def fingerprint(files: list[Path]) -> str:
    """Changes when the weights or the config change, as OpenAI's system_fingerprint does with the backend: the
    config's bytes (the first file, when it is not the weights too) and every weights file's size and time."""
    h = hashlib.sha256(files[0].read_bytes() if files[0].suffix == ".json" else b"")
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return "fp_" + h.hexdigest()[:12]


def memory_bytes(device: str) -> int:
    """The memory of the device the KV cache lives on: the GPU's, or the machine's."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_properties(torch.device(device)).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class ModelSlot:
    """The model and its engine, loaded in a background thread: loading, ready or failed."""

    def __init__(self, cfg: ServeConfig, model_path: Path, files: list[Path], metrics: Metrics, feed: Feed):
        self.cfg, self.path, self.files, self.metrics, self.feed = cfg, model_path, files, metrics, feed
        self.name = model_name(model_path)
        self.state, self.error = "loading", ""
        self.service = None  # CompletionService once ready
        self.closing = False
        self.on_loaded: Callable[[], None] | None = None  # called from the loader thread once ready or failed
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._load, name="colossus-model-loader", daemon=True)

    def max_context(self, mcfg) -> int | None:
        """--max-model-len, or the model's context shortened (to a multiple of 256) until max_batch requests' KV
        cache fits in a quarter of the device's memory: an imported model's 8k to 128k positions times 32 rows
        would otherwise take more than the machine has."""
        if self.cfg.max_model_len is not None:
            return self.cfg.max_model_len
        wide = (self.cfg.kv_dtype or self.cfg.weights) == "float32"
        per_token = 2 * mcfg.n_layer * mcfg.n_kv_head * mcfg.head_dim * (4 if wide else 2)
        budget = memory_bytes(self.cfg.device) // 4
        if self.cfg.max_batch * mcfg.seq_len * per_token <= budget:
            return None
        fits = max(256, budget // (self.cfg.max_batch * per_token) // 256 * 256)
        log.warning("the KV cache of %d requests of %d tokens would take %.1f GiB, more than a quarter of the "
                    "memory: the context is %d tokens (--max-model-len to choose it)", self.cfg.max_batch,
                    mcfg.seq_len, self.cfg.max_batch * mcfg.seq_len * per_token / 2**30, min(fits, mcfg.seq_len))
        return min(fits, mcfg.seq_len)

    def _load(self) -> None:
        try:
            from colossus.assistant.loop import Assistant
            from colossus.infer.engine import Engine
            from colossus.model import load_chat_model
            from colossus.serve.completions import CompletionService, ServedModel

            t = time.perf_counter()
            model, tok = load_chat_model(self.path, self.cfg.device)
            engine = Engine(model, tok, max_batch=self.cfg.max_batch, max_queue=self.cfg.max_queue,
                            device=self.cfg.device, weights=self.cfg.weights, kernel=self.cfg.kernel,
                            kernel_threads=self.cfg.kernel_threads, kv_dtype=self.cfg.kv_dtype,
                            cuda_graphs=self.cfg.cuda_graphs, max_context=self.max_context(model.cfg))
            assistant = Assistant(engine, tok, self.feed, permalink=lambda pid: f"/posts/{pid}")
            served = ServedModel(self.name, tok, engine, assistant, engine.max_context, fingerprint(self.files),
                                 int(max(f.stat().st_mtime for f in self.files)))
            with self.lock:
                if self.closing:
                    return
                engine.start()
                self.service = CompletionService(served, self.metrics)
                self.state = "ready"
            log.info("model %s loaded in %.1f s (context %d tokens)", self.name, time.perf_counter() - t,
                     engine.max_context)
        except Exception as e:  # reported by /health and every generation route
            self.state, self.error = "failed", f"{type(e).__name__}: {e}"
            log.error("loading the model failed: %s", self.error)
        finally:
            if self.on_loaded is not None:
                self.on_loaded()

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        with self.lock:
            self.closing = True
            if self.service is not None:
                self.service.m.engine.shutdown()

    def unavailable(self) -> APIError | None:
        """503 while loading or after a failed load; None once ready."""
        if self.state == "ready":
            return None
        if self.state == "loading":
            return APIError(503, "the model is still loading; retry in a moment", code="model_loading",
                            headers={"Retry-After": "1"})
        return APIError(503, f"the model failed to load: {self.error}", code="model_load_failed")

    def require(self):
        """The CompletionService, or APIError 503."""
        err = self.unavailable()
        if err is not None:
            raise err
        return self.service

    def stats(self) -> dict | None:
        return self.service.m.engine.stats() if self.state == "ready" else None


def open_feed(root: Path, handle: str = DEFAULT_HANDLE) -> Feed:
    """The feed at root, or a ColossusError saying why not (another process writing to it holds its lock)."""
    try:
        return Feed(root, handle)
    except ValueError as e:  # tantivy: the index's writer lock is held
        raise ColossusError(f"the feed at {root} cannot be opened ({str(e).split('.')[0]}): is another server "
                            "using it? Give this one its own with --feed DIR") from None


async def answer_mentions(slot: ModelSlot, feed: Feed, metrics: Metrics, loaded: asyncio.Event) -> None:
    """The server's mention worker (colossus.assistant.mentions): from the model's load until shutdown; none
    when the load failed."""
    await loaded.wait()
    if slot.state != "ready":
        return
    from colossus.assistant.mentions import MentionWorker

    def counted(a) -> None:  # as a chat answer's tool calls and citations are
        metrics.count_answer([st.name for st in a.steps if not st.forced], len(a.annotations), a.bad_citations,
                             a.num_sources_used)

    worker = MentionWorker(slot.service.m.assistant, feed, on_answer=counted)
    feed.on_mention = worker.wake
    log.info("answering the feed's mentions of @%s", feed.handle)
    try:
        await worker.run()
    finally:
        feed.on_mention = None


def create_app(cfg: ServeConfig) -> FastAPI:
    """Checks the model directory and opens the database now (errors surface before serving); the
    weights load when the server starts."""
    model_path, files = resolve_model(cfg.model)
    store = ConversationStore(cfg.db)
    feed = open_feed(cfg.feed, cfg.handle)
    metrics = Metrics()
    slot = ModelSlot(cfg, model_path, files, metrics, feed)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loop, loaded = asyncio.get_running_loop(), asyncio.Event()

        def on_loaded() -> None:  # from the loader thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped first
                loop.call_soon_threadsafe(loaded.set)

        slot.on_loaded = on_loaded
        slot.start()
        mentions = asyncio.create_task(answer_mentions(slot, feed, metrics, loaded), name="colossus-mentions")
        try:
            yield
        finally:
            mentions.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await mentions
            slot.close()
            store.close()
            feed.close()

    app = FastAPI(title="Colossus", version="0.1.0", description=API_DESCRIPTION, lifespan=lifespan,
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None, swagger_ui_oauth2_redirect_url=None,
                  openapi_tags=TAGS)
    app.state.store, app.state.feed, app.state.slot, app.state.max_body = store, feed, slot, cfg.max_body
    install_error_handlers(app)
    app.add_middleware(AccessMiddleware, keys=cfg.api_keys, rate_per_minute=cfg.rate_limit)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes_of=lambda: app.router.routes)

    @app.get("/health", tags=["Server"], operation_id="health", summary="Whether the model is loaded",
             response_model=None, responses={200: {"model": Health, "description": "The model is loaded."},
                                             503: {"model": HealthUnavailable,
                                                   "description": "The model is loading, or its load failed.",
                                                   "headers": error_responses(503)["503"]["headers"]}})
    async def health() -> JSONResponse:
        err = slot.unavailable()
        if err is None:
            return JSONResponse({"status": "ok", "model": slot.name})
        return JSONResponse({"status": slot.state} | err.body(), status_code=503, headers=err.headers)

    @app.get("/metrics", tags=["Server"], operation_id="metrics", summary="Prometheus metrics",
             response_class=PlainTextResponse,
             responses={200: {"description": "The Prometheus text exposition format, version 0.0.4."}})
    async def prometheus() -> PlainTextResponse:
        mentions = await run_in_threadpool(feed.store.mention_counts)
        return PlainTextResponse(metrics.render(slot.stats(), slot.state == "ready", mentions),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    def model_card() -> dict:
        service = slot.require()
        return {"id": slot.name, "object": "model", "created": service.m.created, "owned_by": "colossus",
                "max_model_len": service.m.max_context}

    @app.get("/v1/models", tags=["Models"], operation_id="listModels", summary="The model this server serves",
             response_model=None, responses={200: {"model": ModelList}, **error_responses(503)})
    async def list_models() -> dict:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}", tags=["Models"], operation_id="retrieveModel", summary="One model",
             response_model=None, responses={200: {"model": Model}, **error_responses(404, 503)})
    async def get_model(name: str) -> dict:
        card = model_card()
        if name != card["id"]:
            raise APIError(404, f"the model `{name[:200]}` does not exist", param="model", code="model_not_found")
        return card

    @app.post("/v1/chat/completions", tags=["Chat"], operation_id="createChatCompletion",
              summary="A reply to a conversation", response_model=None,
              openapi_extra=request_body(ChatCompletionRequest),
              responses=generation_responses(ChatCompletion, ChatCompletionChunk))
    async def chat_completions(request: Request) -> Response:
        t0 = time.perf_counter()
        req = parse_body(ChatCompletionRequest, await read_body(request, cfg.max_body))
        return await slot.require().chat(req, request, t0)

    @app.post("/v1/completions", tags=["Completions"], operation_id="createCompletion",
              summary="A continuation of raw text", response_model=None, openapi_extra=request_body(CompletionRequest),
              responses=generation_responses(Completion, CompletionChunk))
    async def completions(request: Request) -> Response:
        t0 = time.perf_counter()
        req = parse_body(CompletionRequest, await read_body(request, cfg.max_body))
        return await slot.require().complete(req, request, t0)

    @app.post("/tokenize", tags=["Tokenize"], operation_id="tokenize", summary="The token ids of a prompt",
              response_model=None, openapi_extra=request_body(TokenizeRequest),
              responses={200: {"model": TokenizeResponse}, **error_responses(400, 404, 413, 503)})
    async def tokenize(request: Request) -> dict:
        req = parse_body(TokenizeRequest, await read_body(request, cfg.max_body))
        service = slot.require()
        service.check_model(req.model)
        return service.tokenize(req.prompt, req.messages)

    app.include_router(conversation_router)
    app.include_router(feed_router)
    app.include_router(factcheck_router)

    @app.get("/", tags=["Server"], operation_id="webChat", summary="The web chat", response_class=HTMLResponse,
             responses={200: {"description": "The web chat's page."}, **error_responses(404)})
    async def index() -> FileResponse:
        return web_app()

    @app.get("/feed", tags=["Server"], operation_id="webFeed", summary="The web app's live feed",
             response_class=HTMLResponse, responses={200: {"description": "The web app's page."},
                                                     **error_responses(404)})
    async def feed_page() -> FileResponse:
        return web_app()

    @app.get("/posts/{post_id}", tags=["Server"], operation_id="webPost", summary="A post's permalink page",
             response_class=HTMLResponse, responses={200: {"description": "The web app's page; it shows the post, "
                                                                          "or that there is no such post."},
                                                     **error_responses(404)})
    async def post_page(post_id: str) -> FileResponse:
        return web_app()

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document(app, cfg)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


API_DESCRIPTION = """An OpenAI-compatible API (chat completions, completions, models) with vLLM's /tokenize, the web
chat's conversation store, and the server's health and metrics. Errors answer as the OpenAI API writes them:
`{"error": {"message", "type", "param", "code"}}`.

The Swagger UI page at /docs loads its script and style from cdn.jsdelivr.net in the browser that opens it; with no
internet it stays blank, and this document (/openapi.json) is all there is: it refers to nothing outside itself."""

TAGS = [{"name": "Chat"}, {"name": "Completions"}, {"name": "Models"},
        {"name": "Tokenize", "description": "vLLM's extension: how a prompt is tokenized."},
        {"name": "Conversations", "description": "The web chat's history, kept in SQLite."},
        {"name": "Feed", "description": "Posts: stored in SQLite, searched with BM25 (tantivy)."},
        {"name": "Server"}]
BEARER = "bearerAuth"


def web_app() -> FileResponse:
    """The web app's one page (its script reads the view from the path), or 404 when it is not installed."""
    page = STATIC_DIR / "index.html"
    if not page.exists():
        raise APIError(404, "the web chat is not installed (colossus/serve/static/index.html is missing)")
    return FileResponse(page)


def generation_responses(answer: type[BaseModel], chunk: type[BaseModel]) -> dict:
    return {200: {"model": answer, "content": {"text/event-stream": event_stream(chunk)},
                  "description": "The answer; with stream: true, server-sent events ending in [DONE]."},
            **error_responses(400, 404, 413, 503)}


def openapi_document(app: FastAPI, cfg: ServeConfig) -> dict:
    """FastAPI's document of the routes, completed: into the components go the request bodies the routes read
    themselves, the chunks of event streams and the error body, which no route names as its model; the 422
    FastAPI assumes for path and query parameters goes (errors.py answers validation errors with 400); the
    bearer scheme and 401 where keys are needed, 429 where a rate limit applies (auth.py decides both, before
    any route runs)."""
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                      tags=app.openapi_tags)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    requests = (ChatCompletionRequest, CompletionRequest, TokenizeRequest, *CONVERSATION_REQUESTS, *FEED_REQUESTS,
                *FACTCHECK_REQUESTS)
    answers = (ChatCompletionChunk, CompletionChunk, ErrorResponse)
    _, defs = models_json_schema([(m, "validation") for m in requests] + [(m, "serialization") for m in answers],
                                 ref_template=REF + "{model}")
    for name, schema in defs["$defs"].items():
        if schemas.setdefault(name, schema) != schema:
            raise RuntimeError(f"two different schemas named {name} in the OpenAPI document")
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    doc["components"]["schemas"] = dict(sorted(schemas.items()))
    for path, operations in doc["paths"].items():
        for op in operations.values():
            responses = op["responses"]
            responses.pop("422", None)
            if cfg.api_keys and path.startswith(PROTECTED):
                op["security"] = [{BEARER: []}]
                responses |= error_responses(401)
            if cfg.rate_limit and path in RATE_LIMITED:
                responses |= error_responses(429)
            op["responses"] = dict(sorted(responses.items()))
    if cfg.api_keys:
        doc["components"]["securitySchemes"] = {BEARER: {
            "type": "http", "scheme": "bearer",
            "description": "One of the server's keys (--api-key, COLOSSUS_API_KEY), on /v1/* and /tokenize."}}
    return doc
