import io

from colossus.errors import ColossusError
from colossus.terminal_chat import chat_loop


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
