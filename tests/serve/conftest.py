"""Fixtures of the HTTP tests: tiny random model directories, live uvicorn servers on 127.0.0.1, and the
browser of the web app's tests.

`server_url` is the shared open server (no keys, no rate limit) that most tests and the browser test
use; `live_server(cfg)` starts another one with its own settings. `model_dir` is as GPT initialises a
model (its output barely depends on the input); `lively` has every weight random, for tests where the
input, a precision or a sampling choice must show in the tokens. `browser` is Debian's chromium driven by
Playwright (the test is skipped when either is missing; `make test` installs chromium), `page` a fresh page
in it that fails its test on any script error."""

from __future__ import annotations

import math
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn
from fastapi import FastAPI

from colossus.infer.engine import Engine
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT
from colossus.model.io import save_model
from colossus.serve.app import ServeConfig, create_app

CONTEXT = 128
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def write_tiny_model(d: Path, tok, context: int, **shape) -> Path:
    """A random model (2 layers of width 32 unless shape says otherwise) with the given context, saved in d
    with its tokenizer."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, seq_len=context, **{"n_layer": 2, "d_model": 32, "n_head": 2,
                                                                     "n_kv_head": 1, **shape})
    d.mkdir()
    tok.save(d / "tokenizer.json")
    save_model(d, GPT(cfg).eval())
    return d


def write_lively_model(d: Path, tok, context: int) -> Path:
    """write_tiny_model's default shape with every weight random. GPT initialises its residual projections to
    zero, so attention and the KV cache have no effect on that model's output at all, and its output head makes
    the logits nearly uniform (a spread of 0.04 over the vocabulary). Here both matter (a spread of about 10),
    so a precision, a kernel or a sampling choice shows in the numbers and the tokens."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, seq_len=context, n_layer=2, d_model=32, n_head=2, n_kv_head=1)
    model = GPT(cfg).eval()
    bound = math.sqrt(3 / cfg.d_model)
    with torch.no_grad():
        for blk in model.blocks:
            for lin in (blk.attn.proj, blk.mlp.down):
                torch.nn.init.uniform_(lin.weight, -bound, bound)
        torch.nn.init.normal_(model.lm_head.weight, std=2 / math.sqrt(cfg.d_model))
    d.mkdir()
    tok.save(d / "tokenizer.json")
    save_model(d, model)
    return d


@pytest.fixture(scope="session")
def lively(tmp_path_factory, tok) -> Path:
    """write_lively_model with a 128-token context (the directory is named lively)."""
    return write_lively_model(tmp_path_factory.mktemp("lively-model") / "lively", tok, CONTEXT)


@pytest.fixture(scope="session")
def tiny_model_writer():
    """write_tiny_model, for test modules that need a model of another context."""
    return write_tiny_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tok) -> Path:
    """A random 2-layer model with a 128-token context, saved with its tokenizer."""
    return write_tiny_model(tmp_path_factory.mktemp("serve-model") / "tiny", tok, CONTEXT)


class LiveServer:
    """uvicorn in a background thread, on a socket bound to a free port before it starts (no race)."""

    def __init__(self, app):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self, wait_ready: bool = True) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        if wait_ready:
            wait_healthy(self.url)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


def wait_healthy(url: str, timeout: float = 900) -> None:
    """Until the model is loaded (a real one takes seconds alone, minutes on a busy machine): a failed load ends
    the wait at once; the timeout only bounds a hung one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/health", timeout=10)
            if r.status_code == 200:
                return
            if r.json().get("status") == "failed":
                raise RuntimeError(f"{url}: the model failed to load: {r.text}")
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become healthy in {timeout} s")


SERVED: dict[str, FastAPI] = {}  # url -> app of the live servers


@pytest.fixture(scope="session")
def live_server(model_dir, tmp_path_factory):
    """A context manager: `with live_server(max_batch=1) as url:` runs a server with those ServeConfig fields;
    prepare(app) may change the app before it starts."""

    @contextmanager
    def run(wait_ready: bool = True, prepare: Callable[[FastAPI], None] | None = None, **fields) -> Iterator[str]:
        fields.setdefault("db", tmp_path_factory.mktemp("db") / "conversations.db")
        fields.setdefault("feed", tmp_path_factory.mktemp("feed"))
        fields.setdefault("model", model_dir)
        app = create_app(ServeConfig(**fields))
        if prepare is not None:
            prepare(app)
        server = LiveServer(app).start(wait_ready)
        SERVED[server.url] = app
        try:
            yield server.url
        finally:
            SERVED.pop(server.url, None)
            server.stop()

    return run


def engine_of(app: FastAPI) -> Engine:
    """The engine of a server whose model is loaded."""
    return app.state.slot.require().m.engine


@pytest.fixture
def engine_at() -> Callable[[str], Engine]:
    """url of a live server -> its engine, to hold it between steps (Engine.pause, resume, wait_held) so that a
    request is running or waiting for exactly as long as a test needs. Left running again after the test."""
    held: list[Engine] = []

    def get(url: str) -> Engine:
        held.append(engine_of(SERVED[url]))
        return held[-1]

    yield get
    for engine in held:
        engine.resume()


@pytest.fixture(scope="session")
def server_url(live_server) -> Iterator[str]:
    """The shared open server."""
    with live_server() as url:
        yield url


@pytest.fixture(scope="session")
def model_name(model_dir) -> str:
    return model_dir.name


@pytest.fixture(scope="session")
def context() -> int:
    """The test model's context, in tokens."""
    return CONTEXT


# ---- the browser of the web app's tests -----------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, launched once per test module and closed at its end."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); the browser test needs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page_timeout_ms() -> int:
    """How long a page's waits may take: a bound for a broken page, not a speed (waits end as soon as their
    condition holds). A module whose model is slow to answer overrides it."""
    return 60_000


@pytest.fixture
def page(browser, page_timeout_ms):
    """A fresh browser context (empty localStorage); fails the test on any script error in the page, and on any
    dialog it did not announce with page.expect_confirm(word) (accepted in order)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=page_timeout_ms)
    context = browser.new_context(viewport={"width": 1200, "height": 850}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(page_timeout_ms)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    confirms: list[str] = []  # a word of each confirm() dialog the test expects

    def on_dialog(dialog) -> None:
        if confirms and dialog.type == "confirm" and confirms[0] in dialog.message.lower():
            confirms.pop(0)
            dialog.accept()
        else:
            errors.append(f"unexpected {dialog.type} dialog: {dialog.message}")
            dialog.dismiss()

    page.on("dialog", on_dialog)
    page.expect_confirm = confirms.append
    yield page
    context.close()
    assert not errors, errors
