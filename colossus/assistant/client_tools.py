"""Client tool calling (OpenAI's tools): the model is offered the client's functions and its calls go back to the
client, which runs them and sends their results on the next turn; the server runs none of them.

    tools = ClientTools(tools=[{"type": "function", "function": {...}}], mode="auto", parallel=True)
    answer = ToolCallingAnswer(assistant, messages, params, tools, request_id)
    async for event in answer.events():      # ToolCallDelta (colossus.assistant.tool_parsers) and Delta (content)
        ...

The tools go into the prompt through the model's template (a model's own Jinja one gets tools=, ours lists them
in a system message: colossus.data.chat_template), and the reply is read by the parser of the model's format
(tool_parsers.parser_for). One turn of the model, no server-side tool: with client tools, a call the model writes
is the client's, whatever its name (our search and calculator are not offered alongside them).

mode is what tool_choice asks for:
- auto: the model decides; a model with no parser writes text only, and its text is never parsed;
- required: the server writes the opening of a call (Hermes: `<tool_call>\\n`; ours: the <|tool_call|> token)
  at the start of the reply, and the model writes the call from there: which function, and its arguments;
- a function's name: the opening and the name, up to `"arguments":`; the model writes the arguments.
(tool_choice none does not come here: the tools are not offered at all, and nothing is parsed, as OpenAI's
"the model will not call any tool".) The forced opening is not sampled, so it costs no completion tokens, and
the parser reads it as the start of the reply. The opening stops at `"arguments":`, not at the space after it,
so the model writes ` {` as the tokenizer splits it in the text it was trained on.
parallel false: the first call ends the reply (the engine request is stopped there).

finish_reason is "tool_calls" when the reply made a call and ended by itself (or at the first call, parallel
false); "length" when max_tokens cut it (a call cut short comes back with the arguments written so far)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

from colossus.assistant.loop import Assistant
from colossus.assistant.tool_parsers import ColossusParser, ToolCallDelta, ToolParser, parser_for
from colossus.data.chat_template import render_prompt
from colossus.infer.engine import Delta
from colossus.infer.sampling import SamplingParams


@dataclass
class ClientTools:
    tools: list[dict]  # OpenAI function tools, as the request gave them
    mode: str = "auto"  # "auto", "required", or the name of the function to call
    parallel: bool = True  # False: at most one call

    @property
    def forced(self) -> str | None:
        """None (the model decides), "" (a call to any function) or the function's name."""
        return None if self.mode == "auto" else "" if self.mode == "required" else self.mode


def tool_prompt(tok, messages: list[dict], tools: ClientTools) -> tuple[list[int], str]:
    """(the prompt's ids with the tools offered and a forced call's opening, that opening as text)."""
    parser = parser_for(tok)
    forced = tools.forced
    prefill = "" if forced is None or parser is None else parser.prefix(forced or None)
    return render_prompt(tok, messages, tools=tools.tools, prefill=prefill), prefill


class ToolCallingAnswer:
    """One reply that may call the client's tools: the interface of colossus.assistant.loop.Answer (events, close,
    and what the API reports: no search runs, so no citations)."""

    def __init__(self, a: Assistant, prompt_ids: list[int], prefill: str, params: SamplingParams, tools: ClientTools,
                 request_id: str):
        self.a, self.ids, self.prefill, self.params, self.rid = a, prompt_ids, prefill, params, request_id
        self.steps: list = []
        self.citations: list[str] = []
        self.annotations: list[dict] = []
        self.bad_citations = self.num_sources_used = 0
        kind = parser_for(a.tok)
        self.parser: ToolParser | None = kind(max_calls=None if tools.parallel else 1) if kind else None
        self.ours = kind is ColossusParser

    def close(self) -> None:
        self.a.engine.abort(self.rid)  # a no-op once it has finished

    async def events(self) -> AsyncIterator[ToolCallDelta | Delta]:
        room = min(self.params.max_tokens, self.a.engine.max_context - len(self.ids))
        params = dataclasses.replace(self.params, max_tokens=max(room, 1))
        parser, first = self.parser, True
        head = parser.feed(self.prefill) if parser and self.prefill else []
        async for d in self.a.engine.generate(self.ids, params, request_id=self.rid):
            if parser is None:
                yield d
                continue
            text = d.text
            if first and d.token_ids:
                first = False
                if self.ours and not self.prefill and d.token_ids[0] == self.a.tool_call_id:
                    text = parser.open + text  # the token that opens a call, which decoding leaves out
            pieces = head + parser.feed(text)
            head = []
            one_call = parser.max_calls is not None and len(parser.calls) >= parser.max_calls
            if d.finish_reason is not None or one_call:
                pieces += parser.finish()
            for p in pieces:
                yield p if isinstance(p, ToolCallDelta) else self._delta(p, d, None)
            if d.finish_reason is not None or one_call:
                reason = d.finish_reason if d.finish_reason not in ("stop", None) or not parser.calls else "tool_calls"
                yield self._delta("", d, reason, d.token_ids, d.logprobs)
                return  # parallel false: leaving the stream stops the engine request at the first call
            if d.token_ids or d.logprobs:
                yield self._delta("", d, None, d.token_ids, d.logprobs)

    @staticmethod
    def _delta(text: str, d: Delta, finish: str | None, ids: list[int] | None = None, logprobs=None) -> Delta:
        return Delta(text, ids or [], logprobs, finish, d.prompt_tokens, d.completion_tokens, d.cached_tokens)
