"""`colossus serve` run for real, as a subprocess through the command line (python -m colossus.cli serve ...).

    with CliServer(["--model", str(model_dir), "--kernel", "torch"], tmp_path / "serve.log") as s:
        httpx.get(f"{s.url}/health")
        assert "PyTorch ops" in s.log()

The server's stdout and stderr go to one log file. start() waits until GET /health answers 200 (the model
is loaded), with a generous deadline and no assumption on how fast that is; the server is always ended on
leaving the block. A port taken between choosing it and the server binding it is retried on another one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 180.0  # seconds to load torch and the model on a busy 2-core machine


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout first on PYTHONPATH, unbuffered output, and no
    $COLOSSUS_API_KEY from the caller's environment (a test that wants one passes it)."""
    env = {k: v for k, v in os.environ.items() if k != "COLOSSUS_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env | extra


def run_cli(*args: str, stdin: str | None = None, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    """python -m colossus.cli ARGS to its end; env adds variables to cli_env()."""
    return subprocess.run([sys.executable, "-m", "colossus.cli", *args], input=stdin, text=True, capture_output=True,
                          timeout=timeout, env=cli_env(**env), cwd=ROOT)


def can_bind(host: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


SECOND_LOOPBACK = "127.0.0.2"  # Linux routes all of 127/8 to lo; elsewhere only 127.0.0.1 may exist
LOOPBACKS = ("127.0.0.1", SECOND_LOOPBACK) if can_bind(SECOND_LOOPBACK) else ("127.0.0.1",)


def free_port(*hosts: str) -> int:
    """A port nobody listens on at any of hosts (default 127.0.0.1) right now."""
    hosts = hosts or ("127.0.0.1",)
    for _ in range(50):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        try:
            for h in hosts[1:]:
                with socket.socket() as s:
                    s.bind((h, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no port free on all of {hosts}")


class CliServer:
    """One `colossus serve` process. args: everything after `serve` except --host and --port."""

    def __init__(self, args: list[str], log_path: Path, host: str | None = "127.0.0.1",
                 env: dict[str, str] | None = None):
        """host None: no --host flag (the default, 127.0.0.1)."""
        self.args, self.log_path, self.env = list(args), Path(log_path), env or {}
        if "--feed" not in self.args:  # a feed of its own beside its log (one process may write to a feed)
            self.args += ["--feed", str(self.log_path.parent / "feed")]
        self.host_flag = [] if host is None else ["--host", host]
        self.host = host or "127.0.0.1"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = START_TIMEOUT) -> CliServer:
        for _ in range(3):
            self.port = free_port(*dict.fromkeys([self.host, *LOOPBACKS]))  # free on every loopback address
            cmd = [sys.executable, "-m", "colossus.cli", "serve", *self.host_flag, "--port", str(self.port), *self.args]
            with self.log_path.open("ab") as out:
                self.proc = subprocess.Popen(cmd, env=cli_env(**self.env), stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=ROOT)
            if self._wait_healthy(timeout):
                return self
            if "address already in use" not in self.log().lower():
                break
        self.stop()
        raise RuntimeError(f"colossus serve {' '.join(self.args)} did not become healthy; its log:\n{self.log()}")

    def _wait_healthy(self, timeout: float) -> bool:
        """True once /health answers 200; False if the process exits first. Raises after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"colossus serve did not become healthy in {timeout} s; its log:\n{self.log()}")

    def wait_log(self, text: str, timeout: float = 60) -> str:
        """The log once it contains text (lines are flushed as they are written, but by another process)."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            assert time.monotonic() < deadline, f"{text!r} never reached the log:\n{log}"
            time.sleep(0.05)
        return log

    def line(self, text: str) -> str:
        """The first log line containing text."""
        log = self.wait_log(text)
        return next(x for x in log.splitlines() if text in x)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs in the server."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> CliServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
