"""/health answers at once: 503 while the model loads in the background, 200 once it is ready, and 503
with the reason when loading failed."""

from __future__ import annotations

import threading
import time

import httpx


def test_health_is_503_until_the_model_is_loaded(live_server):
    release, slots = threading.Event(), []

    def hold_the_load(app):
        slot = app.state.slot
        slots.append(slot)

        def slow_load():
            release.wait(30)
            slot._load()

        slot.thread = threading.Thread(target=slow_load, daemon=True)

    with live_server(wait_ready=False, prepare=hold_the_load) as url:
        r = httpx.get(f"{url}/health")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        assert r.json()["error"]["code"] == "model_loading"
        chat = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert chat.status_code == 503 and chat.headers["retry-after"] == "1"
        assert httpx.get(f"{url}/v1/conversations").status_code == 200  # storage works meanwhile
        assert "colossus_model_loaded 0" in httpx.get(f"{url}/metrics").text
        release.set()
        slots[0].thread.join(30)
        assert httpx.get(f"{url}/health").status_code == 200


def test_health_reports_a_failed_load(live_server, model_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("config.json", "tokenizer.json"):
        (broken / f).write_bytes((model_dir / f).read_bytes())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with live_server(wait_ready=False, model=broken) as url:
        for _ in range(200):
            r = httpx.get(f"{url}/health")
            if r.json()["status"] != "loading":
                break
            time.sleep(0.05)
        assert r.status_code == 503 and r.json()["status"] == "failed"
        assert "corrupt" in r.json()["error"]["message"]
        chat = httpx.post(f"{url}/v1/completions", json={"prompt": "x"})
        assert chat.status_code == 503 and chat.json()["error"]["code"] == "model_load_failed"
