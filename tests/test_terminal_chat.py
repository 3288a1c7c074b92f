import io
import json
import socket
import time

import httpx
import pytest

from colossus.cli import main
from colossus.errors import ColossusError
from colossus.infer.sampling import SamplingParams
from colossus.terminal_chat import RemoteBackend, chat_loop, oldest_turn, sse_data


class FakeBackend:
    """Echoes the conversation's size; can be told to raise mid-reply."""

    def __init__(self, interrupt_on: str | None = None):
        self.calls: list[list[dict]] = []
        self.interrupt_on = interrupt_on

    def stream(self, messages, params):
        self.calls.append(list(messages))
        yield "reply "
        if messages[-1]["content"] == self.interrupt_on:
            raise KeyboardInterrupt
        if messages[-1]["content"] == "too long":
            raise ColossusError("the message is too long")
        yield f"{len(messages)} t={params.temperature}"


def run(lines: list[str], backend: FakeBackend, **kw) -> str:
    it = iter(lines)

    def fake_input(prompt: str) -> str:
        try:
            line = next(it)
        except StopIteration:
            raise EOFError from None
        if line == "^C":
            raise KeyboardInterrupt
        return line

    out = io.StringIO()
    chat_loop(backend, input_fn=fake_input, out=out, **kw)
    return out.getvalue()


def test_multi_turn_keeps_history_and_clear_forgets_it():
    b = FakeBackend()
    out = run(["hi", "again", "/clear", "fresh", "/exit", "never sent"], b)
    assert [len(c) for c in b.calls] == [1, 3, 1]
    assert b.calls[1][1] == {"role": "assistant", "content": "reply 1 t=0.7"}
    assert "(conversation cleared)" in out and "never sent" not in str(b.calls)


def test_system_and_temperature_commands():
    b = FakeBackend()
    out = run(["/system Be brief.", "/temperature 0", "q", "/system", "q2", "/temperature hot"], b)
    assert b.calls[0][0] == {"role": "system", "content": "Be brief."}
    assert "t=0.0" in out
    assert b.calls[1][0]["role"] == "user"  # system prompt removed
    assert "usage: /temperature" in out


def test_ctrl_c_stops_a_reply_not_the_program():
    b = FakeBackend(interrupt_on="stop me")
    out = run(["stop me", "next"], b)
    assert "[stopped]" in out
    assert b.calls[1][1] == {"role": "assistant", "content": "reply "}  # the partial reply is kept
    assert len(b.calls) == 2


def test_ctrl_c_at_the_prompt_and_errors_keep_the_chat_going():
    b = FakeBackend()
    out = run(["^C", "too long", "ok"], b)
    assert "(/exit to leave)" in out and "(error: the message is too long)" in out
    assert len(b.calls[-1]) == 1  # the failed message was not kept


def test_unknown_command_is_explained():
    assert "unknown command /frobnicate" in run(["/frobnicate"], FakeBackend())


# RemoteBackend: the terminal chat talking to a running server, here an httpx MockTransport that answers
# as `colossus serve` does (SSE chunks, OpenAI-style errors).

class ChunkStream(httpx.SyncByteStream):
    """A response body sent in pieces, which records whether the client closed it."""

    def __init__(self, pieces: list[bytes]):
        self.pieces, self.closed = pieces, False

    def __iter__(self):
        yield from self.pieces

    def close(self):
        self.closed = True


def sse(*events: dict | str) -> list[bytes]:
    return [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events]


def delta(text: str) -> dict:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}


class FakeServer:
    """Answers /v1/models and /v1/chat/completions; records the completion requests."""

    def __init__(self, replies: list[list[bytes]] | None = None, models: dict | None = None,
                 error: tuple[int, dict] | None = None):
        self.replies = replies or []
        self.models = models or {"object": "list", "data": [{"id": "tiny", "object": "model", "max_model_len": 64}]}
        self.error = error
        self.requests: list[httpx.Request] = []
        self.streams: list[ChunkStream] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.error is not None:
            return httpx.Response(self.error[0], json=self.error[1])
        if request.url.path == "/v1/models":
            return httpx.Response(200, json=self.models)
        if request.url.path == "/tokenize":  # one token per character of content, to keep the sums simple
            count = sum(len(m["content"]) for m in json.loads(request.content)["messages"])
            return httpx.Response(200, json={"tokens": [0] * count, "count": count, "max_model_len": 64})
        assert request.url.path == "/v1/chat/completions"
        self.requests.append(request)
        stream = ChunkStream(self.replies.pop(0))
        self.streams.append(stream)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)

    def backend(self, **kw) -> RemoteBackend:
        return RemoteBackend("http://testserver/", client=httpx.Client(transport=httpx.MockTransport(self)), **kw)


def test_sse_data_joins_data_lines_and_skips_comments():
    lines = [": keep-alive", "", "data: a", "data: b", "", "event: x", "data: [DONE]", ""]
    assert list(sse_data(lines)) == ["a\nb", "[DONE]"]


def test_remote_backend_streams_the_reply_and_sends_the_request():
    server = FakeServer([sse(delta("Hel"), delta("lo"), {"choices": [], "usage": {"completion_tokens": 2}},
                             "[DONE]")])
    backend = server.backend(api_key="sekret")
    assert backend.connect() == "tiny" and backend.context == 64
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert list(backend.stream(msgs, SamplingParams(temperature=0.3, max_tokens=256, seed=5))) == ["Hel", "lo"]
    req = server.requests[0]
    assert req.headers["authorization"] == "Bearer sekret"
    body = json.loads(req.content)
    assert body["messages"] == msgs and body["stream"] is True and body["model"] == "tiny"
    assert body["temperature"] == 0.3 and body["seed"] == 5
    assert body["max_tokens"] == 32  # half the 64-token context the server reported, as LocalBackend does


def test_remote_backend_in_the_chat_loop_keeps_the_history():
    server = FakeServer([sse(delta("one"), "[DONE]"), sse(delta("two"), "[DONE]")])
    backend = server.backend()
    backend.connect()
    out = run(["first", "second"], backend)
    assert "assistant> one" in out and "assistant> two" in out
    second = json.loads(server.requests[1].content)["messages"]
    assert second == [{"role": "user", "content": "first"}, {"role": "assistant", "content": "one"},
                      {"role": "user", "content": "second"}]


def test_remote_backend_drops_the_oldest_turns_that_no_longer_fit():
    server = FakeServer([sse(delta("a" * 10), "[DONE]"), sse(delta("b" * 10), "[DONE]"), sse(delta("ok"), "[DONE]")])
    backend = server.backend()
    backend.connect()  # context 64, so max_tokens 32 and 32 "tokens" (characters here) for the prompt
    out = run(["q" * 10, "r" * 10, "s" * 10], backend, system="sys")
    sent = [json.loads(r.content)["messages"] for r in server.requests]
    assert [m["content"] for m in sent[0]] == ["sys", "q" * 10]
    # sys 3 + q 10 + a 10 + r 10 = 33 > 32: the oldest turn goes whole (question and reply), never the system prompt
    assert [m["content"] for m in sent[1]] == ["sys", "r" * 10]
    assert [m["content"] for m in sent[2]] == ["sys", "s" * 10]  # 53 -> 33 -> 13
    assert "(the oldest 2 message(s) no longer fit" in out and "(the oldest 4 message(s)" in out


def test_the_oldest_turn_is_a_question_with_its_replies_and_never_the_newest():
    sys, q1, a1, b1, q2 = ({"role": r, "content": c} for r, c in [("system", "s"), ("user", "q1"), ("assistant", "a1"),
                                                                    ("assistant", "b1"), ("user", "q2")])
    assert oldest_turn([sys, q1, a1, b1, q2]) == slice(1, 4)  # both replies go with their question
    assert oldest_turn([a1, q1, b1, q2]) == slice(0, 1)  # a reply before any question is a turn of its own
    assert oldest_turn([q1, q2]) == slice(0, 1)  # a question left unanswered too
    assert oldest_turn([sys, q1, a1]) is None and oldest_turn([sys]) is None and oldest_turn([]) is None


def test_stopping_a_remote_reply_closes_the_connection():
    server = FakeServer([sse(delta("a"), delta("b"), delta("c"), "[DONE]")])
    gen = server.backend().stream([{"role": "user", "content": "x"}], SamplingParams())
    assert next(gen) == "a"
    gen.close()  # what Ctrl-C does to the loop over the reply
    assert server.streams[0].closed


def test_server_errors_become_one_line_messages():
    unauthorized = {"error": {"message": "missing or invalid API key", "type": "authentication_error",
                              "param": None, "code": "invalid_api_key"}}
    with pytest.raises(ColossusError, match=r"^the server answered 401: missing or invalid API key \(pass --api"):
        FakeServer(error=(401, unauthorized)).backend().connect()
    too_long = {"error": {"message": "the prompt is 70 tokens and the context 64", "type": "invalid_request_error",
                          "param": "messages", "code": None}}
    with pytest.raises(ColossusError, match="answered 400: the prompt is 70 tokens"):
        list(FakeServer(error=(400, too_long)).backend().stream([{"role": "user", "content": "x"}], SamplingParams()))
    broken = FakeServer([sse(delta("par"), {"error": {"message": "engine shut down", "type": "server_error"}})])
    out = run(["hi", "/exit"], broken.backend())
    assert "(error: the server stopped the reply: engine shut down)" in out


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_one_line_on_the_command_line(capsys):
    url = f"http://127.0.0.1:{closed_port()}"
    assert main(["chat", "--url", url]) == 2
    err = capsys.readouterr().err
    assert err == f"colossus: error: cannot reach the server at {url}; is `colossus serve` running?\n"
    assert main(["chat", "--url", "ftp://example"]) == 2
    assert main(["chat"]) == 2
    assert "give either --model DIR" in capsys.readouterr().err
    assert main(["chat", "--model", "runs/latest", "--device", "gpu"]) == 2
    assert capsys.readouterr().err == "colossus: error: unknown device 'gpu': use cpu, cuda, cuda:N or mps\n"


def test_remote_chat_against_the_real_app(tok, tiny_model, tmp_path):
    """The whole path in one process: RemoteBackend -> the FastAPI app (auth, /v1/models, /tokenize, SSE)."""
    from starlette.testclient import TestClient

    from colossus.model.io import save_model
    from colossus.serve.app import ServeConfig, create_app

    model_dir = tmp_path / "tiny"
    model_dir.mkdir()
    tok.save(model_dir / "tokenizer.json")
    save_model(model_dir, tiny_model)
    app = create_app(ServeConfig(model=model_dir, db=tmp_path / "c.db", api_keys=["sekret"]))
    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        while client.get("/health").status_code != 200:
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.05)
        with pytest.raises(ColossusError, match="answered 401: .*API key.*pass --api-key"):
            RemoteBackend("http://testserver", api_key="wrong", client=client).connect()
        backend = RemoteBackend("http://testserver", api_key="sekret", client=client)
        assert backend.connect() == "tiny" and backend.context == 64
        out = run(["Who is Sitor Vale?", "And where does he live?", "/exit"], backend, temperature=0.0)
    assert out.count("assistant> ") == 2 and "(error" not in out
