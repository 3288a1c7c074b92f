"""The chat template, defined here and nowhere else.

    <|bos|><|system|>…<|end|><|user|>…<|end|><|assistant|><|tool_call|>…<|end|><|tool_result|>…<|end|>
    <|assistant|>…<|end|>

A message is {"role": system | user | assistant | tool_call | tool, "content": str}. tool_call is
the assistant calling a tool (its content a JSON string, colossus.assistant.format); tool is the tool's
result. A tool call is an assistant turn that opens with <|tool_call|>: every prompt ends with
<|assistant|>, and the model's first token decides whether it answers or calls a tool. Rendering is
lossless: parse(render(messages)) == messages.

For training, an assistant or tool_call message may also carry "emphasis": the character offset of the token
that decides the reply (the "." or "," after a recalled fact in a premise reply), or a list of them (a feed
answer's first token, which picks its form, and the word that picks the fact). Each such token's loss is
weighted EMPHASIS times: one token in twenty carries the whole decision, and unweighted it is learned far too
slowly.

A client's tools (OpenAI's tools field) are rendered in what this template can express: a system message
that lists the functions (TOOLS_PROMPT, then one JSON object a line), and OpenAI's message shapes become
ours: an assistant message with tool_calls becomes a tool_call message per call, each followed by the tool
message that answers it (matched by tool_call_id), as the model writes call, result, call, result. Without
tools and those shapes the prompt is exactly as before."""

from __future__ import annotations

import json

from colossus.data.tokenizer import Tokenizer
from colossus.errors import ColossusError

ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>",
               "tool_call": "<|tool_call|>", "tool": "<|tool_result|>"}
TRAINED_ROLES = ("assistant", "tool_call")  # what the model writes, and so what fine-tuning trains on
EMPHASIS = 8
TOOLS_PROMPT = ('You can call these functions. To call one, reply with only {"name": ..., "arguments": {...}} as '
                "a tool call.")


def check_messages(messages: list[dict]) -> None:
    if not isinstance(messages, list) or not messages:
        raise ColossusError("a conversation is a non-empty list of messages")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLE_TOKENS or not isinstance(m.get("content"), str):
            raise ColossusError(f"bad message {m!r}: need a role in {sorted(ROLE_TOKENS)} and string content")


def render(tok: Tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """ids of a whole conversation, and loss weights: 0 on what the model reads, 1 on tokens it must
    learn to write (the content of assistant and tool_call messages and the <|end|> that closes them),
    EMPHASIS on an emphasised token. (An imported model's tokenizer renders its own template and weighs its
    assistant messages: colossus.data.template_tokenizer.)"""
    own = getattr(tok, "render", None)
    if own is not None:
        return own(messages)
    check_messages(messages)
    ids, weights = [tok.bos], [0]
    for m in messages:
        trained = int(m["role"] in TRAINED_ROLES)
        body, starts = tok.encode_with_offsets(m["content"])
        w = [trained] * len(body)
        if trained and "emphasis" in m:
            for offset in m["emphasis"] if isinstance(m["emphasis"], list) else [m["emphasis"]]:
                at = next((i for i, s in enumerate(starts) if s >= offset), None)
                if at is not None:
                    w[at] = EMPHASIS
        opening = _opening(tok, m["role"])
        ids += opening + body + [tok.end]
        weights += [0] * (len(opening) - 1) + [int(m["role"] == "tool_call")] + w + [trained]
    return ids, weights


def _opening(tok: Tokenizer, role: str) -> list[int]:
    """The tokens that open a message of this role: a tool call is an assistant turn that says so first."""
    if role == "tool_call":
        return [tok.special["<|assistant|>"], tok.special["<|tool_call|>"]]
    return [tok.special[ROLE_TOKENS[role]]]


def render_prompt(tok: Tokenizer, messages: list[dict], tools: list[dict] | None = None,
                  prefill: str = "") -> list[int]:
    """ids that ask the model for the next assistant message (an imported model's tokenizer renders them with the
    model's own template: colossus.data.template_tokenizer). tools: OpenAI function tools offered to the model;
    prefill: text the reply starts with (here a leading <|tool_call|> is the token)."""
    own = getattr(tok, "render_prompt", None)
    if own is not None:
        return own(messages, tools=tools, prefill=prefill) if tools is not None or prefill else own(messages)
    messages = with_tools(from_openai(messages), tools)
    if messages:
        check_messages(messages)
    ids = [tok.bos]
    for m in messages:
        ids += _opening(tok, m["role"]) + tok.encode(m["content"]) + [tok.end]
    ids.append(tok.special["<|assistant|>"])
    if prefill.startswith(ROLE_TOKENS["tool_call"]):
        ids.append(tok.special[ROLE_TOKENS["tool_call"]])
        prefill = prefill[len(ROLE_TOKENS["tool_call"]):]
    return ids + (tok.encode(prefill) if prefill else [])


def tools_message(tools: list[dict]) -> str:
    """The system text that offers a client's functions to our model."""
    lines = [json.dumps({k: t["function"][k] for k in ("name", "description", "parameters") if k in t["function"]},
                        ensure_ascii=False) for t in tools]
    return "\n".join([TOOLS_PROMPT, *lines])


def with_tools(messages: list[dict], tools: list[dict] | None) -> list[dict]:
    """The conversation with the tools' listing in its system message (one is added when it has none)."""
    if not tools:
        return messages
    listing = tools_message(tools)
    if messages and messages[0].get("role") == "system":
        return [{"role": "system", "content": messages[0]["content"] + "\n\n" + listing}, *messages[1:]]
    return [{"role": "system", "content": listing}, *messages]


def from_openai(messages: list[dict]) -> list[dict]:
    """OpenAI's shapes in our roles: an assistant message's tool_calls become tool_call messages (its text, if any,
    an assistant message before them), each followed by the tool message with its id; other messages as they are."""
    out, i = [], 0
    while i < len(messages):
        m = messages[i]
        i += 1
        if not isinstance(m, dict) or m.get("role") != "assistant" or not m.get("tool_calls"):
            out.append({"role": m["role"], "content": m["content"]} if isinstance(m, dict) and "content" in m else m)
            continue
        if m.get("content"):
            out.append({"role": "assistant", "content": m["content"]})
        results = []
        while i < len(messages) and isinstance(messages[i], dict) and messages[i].get("role") == "tool":
            results.append(messages[i])
            i += 1
        for call in m["tool_calls"]:
            f = call.get("function", call)
            out.append({"role": "tool_call", "content": json.dumps({"name": f.get("name"), "arguments": f.get(
                "arguments", {})}, ensure_ascii=False)})
            answer = next((r for r in results if r.get("tool_call_id") == call.get("id")), None)
            if answer is not None:
                results.remove(answer)
                out.append({"role": "tool", "content": answer["content"]})
        out += [{"role": "tool", "content": r["content"]} for r in results]
    return out


def jinja_template(space: bool) -> str:
    """This template as Jinja, for an exported model (transformers' apply_chat_template, llama.cpp): the ids of
    render_prompt with add_generation_prompt, of render without. `space`: the template writes the space our
    encode puts in front of each message (a GGUF file: llama.cpp's BPE adds none); without it, the tokenizer must
    (an exported tokenizer.json's Prepend(" ") normalizer, which runs on each text between special tokens)."""
    chain = ""  # {% if role == 'system' %}<|system|>{% elif ... %}: each role's opening, as _opening gives it
    for i, role in enumerate(ROLE_TOKENS):
        opening = ROLE_TOKENS["assistant"] + ROLE_TOKENS[role] if role == "tool_call" else ROLE_TOKENS[role]
        chain += f"{{% {'if' if i == 0 else 'elif'} message['role'] == '{role}' %}}{opening}"
    refuse = f"{{{{ raise_exception('a message role must be one of {', '.join(ROLE_TOKENS)}') }}}}"
    content = "{{ ' ' + message['content'] }}" if space else "{{ message['content'] }}"
    return ("{{ bos_token }}{% for message in messages %}" + chain + "{% else %}" + refuse + "{% endif %}"
            + content + "<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


def parse(tok: Tokenizer, ids: list[int]) -> list[dict]:
    """The inverse of render: ids -> messages."""
    role_of = {tok.special[t]: r for r, t in ROLE_TOKENS.items()}
    messages, role, body = [], None, []
    for i in ids:
        if i == tok.bos and role is None:
            continue
        if role == "assistant" and not body and i == tok.special["<|tool_call|>"]:
            role = "tool_call"
            continue
        if role is None:
            if i not in role_of:
                raise ColossusError(f"expected a role token, found id {i}")
            role, body = role_of[i], []
        elif i == tok.end:
            messages.append({"role": role, "content": tok.decode(body)})
            role = None
        else:
            body.append(i)
    if role is not None:
        raise ColossusError("conversation ends inside a message (no <|end|>)")
    return messages
