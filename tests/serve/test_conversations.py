"""The conversation store over HTTP, and its survival of a SIGKILL of the real `colossus serve`."""

from __future__ import annotations

import httpx
import pytest
from cli_server import CliServer

from colossus.cli import main
from colossus.infer.cpu_decode import load_kernel
from colossus.serve.conversations import ConversationStore


def test_crud_and_export(server_url):
    c = httpx.Client(base_url=server_url)
    conv = c.post("/v1/conversations", json={"title": "Rivers", "system": "Be brief.",
                                             "settings": {"temperature": 0.2}}).json()
    assert conv["object"] == "conversation" and conv["id"].startswith("conv_")
    assert conv["title"] == "Rivers" and conv["system"] == "Be brief." and conv["settings"] == {"temperature": 0.2}
    assert conv["messages"] == [] and conv["created"] == conv["updated"] > 0
    cid = conv["id"]

    m1 = c.post(f"/v1/conversations/{cid}/messages", json={"role": "user", "content": "Where is Vale?"}).json()
    m2 = c.post(f"/v1/conversations/{cid}/messages",
                json={"role": "assistant", "content": "In the north.", "meta": {"tokens": 4}}).json()
    assert m1["id"].startswith("msg_") and m1["meta"] is None and m2["meta"] == {"tokens": 4}
    got = c.get(f"/v1/conversations/{cid}").json()
    assert [(m["role"], m["content"]) for m in got["messages"]] == [("user", "Where is Vale?"),
                                                                    ("assistant", "In the north.")]
    assert got["messages"][0]["id"] == m1["id"]

    # edit and resend: replace the messages, keeping the id of the one kept
    patched = c.patch(f"/v1/conversations/{cid}", json={
        "title": "Vale", "settings": {"temperature": 0.9},
        "messages": [{"id": m1["id"], "role": "user", "content": "Where is Sitor Vale?"}]}).json()
    assert patched["title"] == "Vale" and patched["settings"] == {"temperature": 0.9}
    assert patched["system"] == "Be brief."  # not given: unchanged
    assert [(m["id"], m["content"]) for m in patched["messages"]] == [(m1["id"], "Where is Sitor Vale?")]
    assert c.patch(f"/v1/conversations/{cid}", json={"system": None}).json()["system"] is None

    listed = c.get("/v1/conversations").json()
    assert listed["object"] == "list"
    entry = next(x for x in listed["data"] if x["id"] == cid)
    assert entry["message_count"] == 1 and "messages" not in entry

    export = c.get(f"/v1/conversations/{cid}/export")
    assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
    assert export.json()["messages"][0]["content"] == "Where is Sitor Vale?"

    assert c.delete(f"/v1/conversations/{cid}").json() == {"id": cid, "object": "conversation.deleted",
                                                          "deleted": True}
    for r in (c.get(f"/v1/conversations/{cid}"), c.get(f"/v1/conversations/{cid}/export"),
              c.patch(f"/v1/conversations/{cid}", json={"title": "x"}), c.delete(f"/v1/conversations/{cid}"),
              c.post(f"/v1/conversations/{cid}/messages", json={"role": "user", "content": "x"})):
        assert r.status_code == 404 and r.json()["error"]["code"] == "conversation_not_found"


def test_create_with_messages_and_empty_body(server_url):
    c = httpx.Client(base_url=server_url)
    conv = c.post("/v1/conversations", json={"messages": [{"role": "user", "content": "a"},
                                                          {"role": "assistant", "content": "b"}]}).json()
    assert [m["content"] for m in conv["messages"]] == ["a", "b"] and conv["title"]
    assert c.post("/v1/conversations").json()["messages"] == []


def test_newest_first(tmp_path):
    store = ConversationStore(tmp_path / "c.db")
    a, b = store.create(title="a"), store.create(title="b")
    assert [x["id"] for x in store.list()][:2] == [b["id"], a["id"]]
    store.append(a["id"], {"role": "user", "content": "x"})
    assert store.list()[0]["id"] == a["id"]  # touched last
    store.close()


def test_sigkill_loses_nothing_acknowledged(model_dir, tmp_path):
    """Write through the CLI server, kill -9 it, start it again: everything it acknowledged is there.
    Also: keys from --api-key and $COLOSSUS_API_KEY both work, and none reaches the log; on a machine new to
    it (an empty kernel cache) the first start times its two forward paths and says which it takes, the
    second reads that from the cache."""
    log, auth = tmp_path / "serve.log", {"Authorization": "Bearer env-key-2"}
    args = ["--model", str(model_dir), "--db", str(tmp_path / "conv.db"), "--api-key", "cli-key"]
    env = {"COLOSSUS_API_KEY": "env-key-1,env-key-2", "COLOSSUS_CACHE": str(tmp_path / "cache")}
    with CliServer(args, log, env=env) as s:
        assert httpx.get(f"{s.url}/v1/conversations").status_code == 401
        assert httpx.get(f"{s.url}/v1/conversations", headers={"Authorization": "Bearer cli-key"}).status_code == 200
        cid = httpx.post(f"{s.url}/v1/conversations", json={"title": "durable"}, headers=auth).json()["id"]
        for i in range(20):
            r = httpx.post(f"{s.url}/v1/conversations/{cid}/messages", headers=auth,
                           json={"role": "user", "content": f"message {i}"})
            assert r.status_code == 200
        s.kill()
    with CliServer(args, log, env=env) as s:
        conv = httpx.get(f"{s.url}/v1/conversations/{cid}", headers=auth).json()
        assert conv["title"] == "durable"
        assert [m["content"] for m in conv["messages"]] == [f"message {i}" for i in range(20)]
    text = log.read_text()
    assert "Serving" in text and "3 API key(s)" in text
    assert not any(k in text for k in ("env-key-1", "env-key-2", "cli-key"))
    if load_kernel() is not None:
        assert text.count("timed the C step and PyTorch ops") == 1
        assert text.count("forward path by step size (--kernel c or torch to force one): decode rows 1, 2, 4") == 2


@pytest.mark.parametrize("args,message", [
    (["--model", "/no/such/model"], "no model at"),
    (["--rate-limit", "lots"], "--rate-limit"),
    (["--port", "0"], "--port"),
    (["--max-batch", "0"], "--max-batch"),
    (["--kernel-threads", "0"], "--kernel-threads"),
    (["--device", "gpu"], "unknown device 'gpu': use cpu, cuda, cuda:N or mps"),
    (["--device", "cuda:99"], "--device cuda:99"),
])
def test_cli_errors_are_one_line(model_dir, tmp_path, capsys, args, message):
    assert main(["serve", "--model", str(model_dir), "--db", str(tmp_path / "c.db"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
