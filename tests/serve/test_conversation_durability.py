"""The conversation store's promise (README, colossus/serve/conversations.py): every write is committed
before the answer, so a SIGKILL of `colossus serve` loses nothing it acknowledged, also in a burst of
concurrent writes.

WORKERS threads write through the real CLI server, each over its own connection: they create conversations,
append to them and to one shared conversation, and rename them. Each write that answers 2xx is acknowledged.
The worker whose acknowledgement is the KILL_AFTER-th SIGKILLs the server while the others keep writing; each
worker then stops at its first failed request (the kill is decided by a count, never by time). Reopened,
the database holds every acknowledged write with its content, in each worker's order; of the writes that
were not acknowledged (one per worker: its request in flight or refused at the kill) each may or may not
be there, and nothing else is."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cli_server import CliServer

from colossus.serve.conversations import ConversationStore

WORKERS = 8
KILL_AFTER = 48  # acknowledged writes before the kill: 6 a worker on average
MAX_CONVERSATIONS = 50  # a worker's bound: 400 writes, far more than it writes before the kill
MESSAGES_A_CONVERSATION = 3
SHARED_TITLE = "shared by every worker"


@dataclass
class Write:
    """One write request; reply is the JSON of its 2xx answer, None when it was not acknowledged."""

    kind: str  # create, append or rename
    conv: str | None  # the conversation's id (a create's is in its reply)
    text: str  # the title, or the message's content
    reply: dict | None = None


@dataclass
class Worker:
    index: int
    writes: list[Write] = field(default_factory=list)
    ended_by: BaseException | None = None

    @property
    def acked(self) -> list[Write]:
        return [w for w in self.writes if w.reply is not None]

    @property
    def unacked(self) -> Write | None:
        """The write in flight at the kill, if this worker had one (every worker ends with one)."""
        return self.writes[-1] if self.writes and self.writes[-1].reply is None else None


class Burst:
    """The workers writing through server, which is SIGKILLed at the KILL_AFTER-th acknowledgement."""

    def __init__(self, server: CliServer, shared: str):
        self.server, self.shared = server, shared
        self.lock = threading.Lock()
        self.acks = 0
        self.killed = threading.Event()
        self.workers = [Worker(i) for i in range(WORKERS)]

    def acknowledged(self) -> None:
        with self.lock:
            self.acks += 1
            kill = self.acks == KILL_AFTER
        if kill:  # while the other workers' requests are in flight
            self.server.kill()
            self.killed.set()

    def send(self, client: httpx.Client, worker: Worker, write: Write) -> dict:
        """The write's reply; raises when it is not acknowledged (the worker stops there)."""
        worker.writes.append(write)
        if write.kind == "create":
            r = client.post("/v1/conversations", json={"title": write.text})
        elif write.kind == "append":
            r = client.post(f"/v1/conversations/{write.conv}/messages", json={"role": "user", "content": write.text})
        else:
            r = client.patch(f"/v1/conversations/{write.conv}", json={"title": write.text})
        r.raise_for_status()
        write.reply = r.json()
        self.acknowledged()
        return write.reply

    def run_worker(self, worker: Worker) -> None:
        w = worker.index
        with httpx.Client(base_url=self.server.url, timeout=120) as client:
            try:
                for k in range(MAX_CONVERSATIONS):
                    cid = self.send(client, worker, Write("create", None, f"w{w} conversation {k}"))["id"]
                    for j in range(MESSAGES_A_CONVERSATION):
                        self.send(client, worker, Write("append", cid, f"w{w} c{k} message {j}"))
                        self.send(client, worker, Write("append", self.shared, f"w{w} c{k} shared {j}"))
                    self.send(client, worker, Write("rename", cid, f"w{w} conversation {k} renamed"))
            except (httpx.TransportError, httpx.HTTPStatusError) as e:
                worker.ended_by = e

    def run(self) -> None:
        threads = [threading.Thread(target=self.run_worker, args=(w,)) for w in self.workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
            assert not t.is_alive(), "a worker hung"


def own_conversations(worker: Worker, shared: str) -> dict[str, list[Write]]:
    """conversation id -> the worker's acknowledged writes to it, in order (its create first); not the shared one."""
    out: dict[str, list[Write]] = {}
    for w in worker.acked:
        if w.conv != shared:
            out.setdefault(w.reply["id"] if w.kind == "create" else w.conv, []).append(w)
    return out


def check_worker(store: ConversationStore, shared: dict, worker: Worker) -> None:
    """Every acknowledged write of worker is in the store, in its order; the unacknowledged one may be there."""
    late = worker.unacked
    for cid, writes in own_conversations(worker, shared["id"]).items():
        conv = store.get(cid)
        assert conv is not None, f"acknowledged conversation {cid} is lost"
        titles = [w.text for w in writes if w.kind in ("create", "rename")]
        allowed = {titles[-1]} | ({late.text} if late and late.kind == "rename" and late.conv == cid else set())
        assert conv["title"] in allowed, (conv["title"], allowed)
        stored = [(m["id"], m["role"], m["content"]) for m in conv["messages"]]
        acked = [(w.reply["id"], "user", w.text) for w in writes if w.kind == "append"]
        assert stored[:len(acked)] == acked, f"acknowledged messages of {cid} are lost or changed"
        extra = [c for _, _, c in stored[len(acked):]]
        assert extra in ([], [late.text] if late and late.kind == "append" and late.conv == cid else []), extra
    mine = [(m["id"], m["content"]) for m in shared["messages"] if m["content"].startswith(f"w{worker.index} ")]
    acked = [(w.reply["id"], w.text) for w in worker.acked if w.conv == shared["id"]]
    assert mine[:len(acked)] == acked, f"worker {worker.index}'s acknowledged shared messages are lost or changed"
    assert [c for _, c in mine[len(acked):]] in ([], [late.text] if late and late.conv == shared["id"] else [])


def test_sigkill_in_a_burst_of_concurrent_writes_loses_nothing_acknowledged(model_dir: Path, tmp_path: Path):
    db = tmp_path / "conversations.db"
    with CliServer(["--model", str(model_dir), "--db", str(db), "--kernel", "torch"], tmp_path / "serve.log") as s:
        r = httpx.post(f"{s.url}/v1/conversations", json={"title": SHARED_TITLE}, timeout=60)
        assert r.status_code == 200, r.text
        burst = Burst(s, r.json()["id"])
        burst.run()
        assert burst.killed.is_set(), f"the kill never came: {burst.acks} acknowledgements; {s.log()}"
        assert s.proc.returncode == -9
    # every worker stopped at a request the dead server could not answer, none at an error answer before it
    for w in burst.workers:
        assert isinstance(w.ended_by, httpx.TransportError), (w.index, w.ended_by)
        assert w.unacked is not None
    assert burst.acks >= KILL_AFTER

    store = ConversationStore(db)
    try:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        shared = store.get(burst.shared)
        assert shared is not None and shared["title"] == SHARED_TITLE
        for w in burst.workers:
            check_worker(store, shared, w)
        known = {cid for w in burst.workers for cid in own_conversations(w, burst.shared)} | {burst.shared}
        late_creates = {w.unacked.text for w in burst.workers if w.unacked.kind == "create"}
        for conv in store.list(limit=1000):  # the only others: creates in flight at the kill
            assert conv["id"] in known or conv["title"] in late_creates, conv
        # the settings that make a commit survive even the machine's crash, not only the process's
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()


@pytest.mark.parametrize("pragma,value", [("journal_mode", "wal"), ("synchronous", 2), ("foreign_keys", 1)])
def test_the_store_opens_with_wal_and_full_sync(tmp_path: Path, pragma: str, value: str | int):
    store = ConversationStore(tmp_path / "c.db")
    try:
        assert store.db.execute(f"PRAGMA {pragma}").fetchone()[0] == value
    finally:
        store.close()
