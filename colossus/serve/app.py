"""The HTTP server: an OpenAI-compatible API, the conversation store and the web chat.

    colossus serve --model runs/latest [--port 8000] [--api-key KEY] [--db PATH] [--max-batch N]
    curl localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\
         -d '{"messages": [{"role": "user", "content": "Who is Sitor Vale?"}]}'

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, POST /tokenize, GET /health
(503 until the model is loaded), GET /metrics (Prometheus), /v1/conversations... (conversation_routes),
GET / (the web chat) and /static/... The model loads in a background thread, so /health answers at once.
Routes stay thin: the logic is in completions.py, the request bodies in protocol.py."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from colossus.model.io import CONFIG, TOKENIZER, WEIGHTS, resolve_model_dir
from colossus.serve.auth import AccessMiddleware
from colossus.serve.conversation_routes import router as conversation_router
from colossus.serve.conversations import DEFAULT_DB, ConversationStore
from colossus.serve.errors import APIError, install_error_handlers
from colossus.serve.metrics import Metrics, MetricsMiddleware
from colossus.serve.protocol import ChatCompletionRequest, CompletionRequest, TokenizeRequest, parse_body, read_body

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


def model_name(model_dir: Path) -> str:
    """runs/NAME/model -> NAME; any other directory -> its own name."""
    d = model_dir.resolve()
    return d.parent.name if d.name == "model" else d.name


def fingerprint(model_dir: Path) -> str:
    """Changes when the weights or the config change, as OpenAI's system_fingerprint does with the backend."""
    h = hashlib.sha256((model_dir / CONFIG).read_bytes())
    st = (model_dir / WEIGHTS).stat()
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return "fp_" + h.hexdigest()[:12]


class ModelSlot:
    """The model and its engine, loaded in a background thread: loading, ready or failed."""

    def __init__(self, cfg: ServeConfig, model_dir: Path, metrics: Metrics):
        self.cfg, self.dir, self.metrics = cfg, model_dir, metrics
        self.name = model_name(model_dir)
        self.state, self.error = "loading", ""
        self.service = None  # CompletionService once ready
        self.closing = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._load, name="colossus-model-loader", daemon=True)

    def _load(self) -> None:
        try:
            from colossus.data.tokenizer import Tokenizer
            from colossus.infer.engine import Engine
            from colossus.model.io import load_model
            from colossus.serve.completions import CompletionService, ServedModel

            t = time.perf_counter()
            tok = Tokenizer.load(self.dir / TOKENIZER)
            model = load_model(self.dir, self.cfg.device)
            engine = Engine(model, tok, max_batch=self.cfg.max_batch, max_queue=self.cfg.max_queue,
                            device=self.cfg.device, weights=self.cfg.weights, kernel=self.cfg.kernel,
                            kernel_threads=self.cfg.kernel_threads, kv_dtype=self.cfg.kv_dtype,
                            cuda_graphs=self.cfg.cuda_graphs)
            served = ServedModel(self.name, tok, engine, engine.max_context, fingerprint(self.dir),
                                 int((self.dir / WEIGHTS).stat().st_mtime))
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


def create_app(cfg: ServeConfig) -> FastAPI:
    """Checks the model directory and opens the database now (errors surface before serving); the
    weights load when the server starts."""
    model_dir = resolve_model_dir(cfg.model)
    store = ConversationStore(cfg.db)
    metrics = Metrics()
    slot = ModelSlot(cfg, model_dir, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        slot.start()
        try:
            yield
        finally:
            slot.close()
            store.close()

    app = FastAPI(title="Colossus", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.store, app.state.slot, app.state.max_body = store, slot, cfg.max_body
    install_error_handlers(app)
    app.add_middleware(AccessMiddleware, keys=cfg.api_keys, rate_per_minute=cfg.rate_limit)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes_of=lambda: app.router.routes)

    @app.get("/health")
    async def health() -> JSONResponse:
        err = slot.unavailable()
        if err is None:
            return JSONResponse({"status": "ok", "model": slot.name})
        return JSONResponse({"status": slot.state} | err.body(), status_code=503, headers=err.headers)

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(slot.stats(), slot.state == "ready"),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    def model_card() -> dict:
        service = slot.require()
        return {"id": slot.name, "object": "model", "created": service.m.created, "owned_by": "colossus",
                "max_model_len": service.m.max_context}

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    async def get_model(name: str) -> dict:
        card = model_card()
        if name != card["id"]:
            raise APIError(404, f"the model `{name[:200]}` does not exist", param="model", code="model_not_found")
        return card

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        t0 = time.perf_counter()
        req = parse_body(ChatCompletionRequest, await read_body(request, cfg.max_body))
        return await slot.require().chat(req, request, t0)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        t0 = time.perf_counter()
        req = parse_body(CompletionRequest, await read_body(request, cfg.max_body))
        return await slot.require().complete(req, request, t0)

    @app.post("/tokenize")
    async def tokenize(request: Request) -> dict:
        req = parse_body(TokenizeRequest, await read_body(request, cfg.max_body))
        service = slot.require()
        service.check_model(req.model)
        return service.tokenize(req.prompt, req.messages)

    app.include_router(conversation_router)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        page = STATIC_DIR / "index.html"
        if not page.exists():
            raise APIError(404, "the web chat is not installed (colossus/serve/static/index.html is missing)")
        return FileResponse(page)

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return app
