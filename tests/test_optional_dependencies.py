"""Tests never silently vanish: without an optional dependency (the openai client, aiohttp, transformers,
playwright, schemathesis, a C compiler) the tests that need it skip with a reason, and collection never fails.

Each check runs pytest in a subprocess in which the dependency is hidden: an import hook refuses the modules,
or PATH holds no C compiler and the kernel cache is empty."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HIDDEN = ("openai", "aiohttp", "transformers", "playwright", "schemathesis")
HIDE = f'''
import importlib.abc, sys

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HIDDEN!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by the test)", name=name)
        return None

sys.meta_path.insert(0, Hide())
'''


def pytest_run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "-rs", *args]
    return subprocess.run(argv, cwd=REPO, env=env, text=True, capture_output=True, timeout=1800,
                          stdin=subprocess.DEVNULL)


NO_PLUGINS = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
"""Installed, schemathesis is a pytest plugin, whose modules pytest's own import hook (ahead of ours) would find;
not installed, there is no plugin. No test here needs one of the plugins that autoload would bring."""


def test_hidden_python_packages_skip_their_tests_with_a_reason(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(HIDE)
    env = {**os.environ, **NO_PLUGINS, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    r = pytest_run(["--collect-only", "tests"], env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "ERROR" not in out and "error during collection" not in out, out[-3000:]
    skipped = re.findall(r"SKIPPED \[\d+\] (\S+?):\d+: (.+)", out)
    files = {Path(f).name for f, _ in skipped}
    for needs in ("test_errors.py", "test_openai_api.py", "test_auth.py", "test_serve_client.py",
                  "test_serve_bench.py", "test_train_step_bench.py", "test_web_chat.py"):
        assert needs in files, (needs, out[-3000:])
    assert all(reason.strip() for _, reason in skipped)
    probe = subprocess.run([sys.executable, "-c", "import openai"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "hidden by the test" in probe.stderr  # the hook really hid them
    # the fuzzer is imported by a fixture, so its tests skip when they run (and the schema checks still run)
    r = pytest_run(["tests/serve/test_openapi.py"], env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    fuzz_skipped = r"SKIPPED \[\d+\] tests/serve/test_openapi.py:\d+: schemathesis is not installed"
    assert re.search(fuzz_skipped, out), out[-3000:]
    assert re.search(r"\d+ passed", out)


@pytest.mark.skipif(not Path("/bin/sh").exists(), reason="needs a POSIX shell to build a PATH without compilers")
def test_no_c_compiler_skips_the_c_step_tests_with_a_reason(tmp_path):
    bin_dir = tmp_path / "bin"  # python alone: no cc, gcc or clang on PATH
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "CC"}
    env |= {"PATH": str(bin_dir), "COLOSSUS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    assert shutil.which("cc", path=env["PATH"]) is None and shutil.which("gcc", path=env["PATH"]) is None
    r = pytest_run(["tests/infer/test_cpu_decode.py", "tests/benchmarks/test_batch_scaling_bench.py"], env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert re.search(r"SKIPPED \[\d+\] tests/infer/test_cpu_decode.py:\d+: no C compiler", out), out[-3000:]
    assert re.search(r"\d+ passed", out)  # what needs no compiler still runs
