"""The chat template, defined here and nowhere else.

    <|bos|><|system|>…<|end|><|user|>…<|end|><|assistant|><|tool_call|>…<|end|><|tool_result|>…<|end|>
    <|assistant|>…<|end|>

A message is {"role": system | user | assistant | tool_call | tool, "content": str}. tool_call is
the assistant calling a tool (its content a JSON string, colossus.assistant.format); tool is the tool's
result. A tool call is an assistant turn that opens with <|tool_call|>: every prompt ends with
<|assistant|>, and the model's first token decides whether it answers or calls a tool. Rendering is
lossless: parse(render(messages)) == messages.

For training, an assistant message may also carry "emphasis": the character offset of the token that
decides the reply (the "." or "," after a recalled fact in a premise reply). That token's loss is
weighted EMPHASIS times: one token in twenty carries the whole decision, and unweighted it is
learned far too slowly."""

from __future__ import annotations

from colossus.data.tokenizer import Tokenizer
from colossus.errors import ColossusError

ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>",
               "tool_call": "<|tool_call|>", "tool": "<|tool_result|>"}
TRAINED_ROLES = ("assistant", "tool_call")  # what the model writes, and so what fine-tuning trains on
EMPHASIS = 8


def check_messages(messages: list[dict]) -> None:
    if not isinstance(messages, list) or not messages:
        raise ColossusError("a conversation is a non-empty list of messages")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLE_TOKENS or not isinstance(m.get("content"), str):
            raise ColossusError(f"bad message {m!r}: need a role in {sorted(ROLE_TOKENS)} and string content")


def render(tok: Tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """ids of a whole conversation, and loss weights: 0 on what the model reads, 1 on tokens it must
    learn to write (the content of assistant and tool_call messages and the <|end|> that closes them),
    EMPHASIS on an emphasised token."""
    check_messages(messages)
    ids, weights = [tok.bos], [0]
    for m in messages:
        trained = int(m["role"] in TRAINED_ROLES)
        body, starts = tok.encode_with_offsets(m["content"])
        w = [trained] * len(body)
        if trained and "emphasis" in m:
            at = next((i for i, s in enumerate(starts) if s >= m["emphasis"]), None)
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


def render_prompt(tok: Tokenizer, messages: list[dict]) -> list[int]:
    """ids that ask the model for the next assistant message (an imported model's tokenizer renders them with the
    model's own template: colossus.data.template_tokenizer)."""
    own = getattr(tok, "render_prompt", None)
    if own is not None:
        return own(messages)
    if messages:
        check_messages(messages)
    ids = [tok.bos]
    for m in messages:
        ids += _opening(tok, m["role"]) + tok.encode(m["content"]) + [tok.end]
    return ids + [tok.special["<|assistant|>"]]


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
