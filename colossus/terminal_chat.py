"""The terminal chat: multi-turn, replies streamed as they are made.

    colossus chat --model runs/latest

Commands: /clear (forget the conversation), /system TEXT (set the system prompt; /system alone
removes it), /temperature T, /help, /exit. Ctrl-C stops a reply, not the program; Ctrl-D leaves."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import torch

from colossus.data import chat_template
from colossus.data.tokenizer import StreamDecoder, Tokenizer
from colossus.errors import ColossusError
from colossus.infer.generate import stream
from colossus.infer.sampling import SamplingParams
from colossus.model.io import TOKENIZER, load_model, resolve_model_dir

HELP = ("/clear  forget the conversation    /system TEXT  set the system prompt (alone: remove it)\n"
        "/temperature T  sampling temperature (0 = greedy)    /exit  leave    Ctrl-C stops a reply")


class Backend(Protocol):
    def stream(self, messages: list[dict], params: SamplingParams) -> Iterator[str]: ...


class LocalBackend:
    """Generates with a model directory in this process."""

    def __init__(self, model_path: str | Path, device: str = "cpu"):
        d = resolve_model_dir(model_path)
        self.tok = Tokenizer.load(d / TOKENIZER)
        self.model = load_model(d, device)
        self.device = device
        self.dropped_turns = 0

    def fit(self, messages: list[dict], max_tokens: int) -> list[int]:
        """The prompt for messages, dropping the oldest turns (never the system prompt or the last
        message) until it leaves room for max_tokens."""
        budget = self.model.cfg.seq_len - max_tokens
        msgs = list(messages)
        self.dropped_turns = 0
        while True:
            ids = chat_template.render_prompt(self.tok, msgs)
            if len(ids) <= budget:
                return ids
            first = 1 if msgs and msgs[0]["role"] == "system" else 0
            if len(msgs) - first <= 1:
                raise ColossusError(f"the message is too long: {len(ids)} tokens, and the model's context is "
                                    f"{self.model.cfg.seq_len} with {max_tokens} kept for the reply")
            del msgs[first]
            self.dropped_turns += 1

    def stream(self, messages: list[dict], params: SamplingParams) -> Iterator[str]:
        max_tokens = min(params.max_tokens, self.model.cfg.seq_len // 2)
        prompt = self.fit(messages, max_tokens)
        p = SamplingParams(params.temperature, params.top_k, params.top_p, max_tokens, params.seed)
        dec = StreamDecoder(self.tok)
        with torch.inference_mode():
            for tok_id, _ in stream(self.model, prompt, p, {self.tok.end, self.tok.bos}, self.device):
                piece = dec.push(tok_id)
                if piece:
                    yield piece
        tail = dec.flush()
        if tail:
            yield tail


def chat_loop(backend: Backend, system: str | None = None, temperature: float = 0.7,
              input_fn: Callable[[str], str] = input, out=sys.stdout) -> None:
    messages: list[dict] = []
    params = SamplingParams(temperature=temperature, max_tokens=256)

    def write(s: str) -> None:
        out.write(s)
        out.flush()

    while True:
        try:
            line = input_fn("you> ")
        except EOFError:
            write("\n")
            return
        except KeyboardInterrupt:
            write("\n(/exit to leave)\n")
            continue
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            cmd, _, arg = text.partition(" ")
            if cmd in ("/exit", "/quit"):
                return
            if cmd == "/clear":
                messages.clear()
                write("(conversation cleared)\n")
            elif cmd == "/system":
                system = arg.strip() or None
                write(f"(system prompt: {system!r})\n" if system else "(system prompt removed)\n")
            elif cmd == "/temperature":
                try:
                    params = SamplingParams(temperature=float(arg), max_tokens=params.max_tokens)
                    write(f"(temperature {params.temperature})\n")
                except (ValueError, ColossusError):
                    write("(usage: /temperature T, with T a number >= 0)\n")
            elif cmd == "/help":
                write(HELP + "\n")
            else:
                write(f"(unknown command {cmd}; /help lists them)\n")
            continue
        messages.append({"role": "user", "content": text})
        convo = ([{"role": "system", "content": system}] if system else []) + messages
        reply: list[str] = []
        write("assistant> ")
        try:
            for piece in backend.stream(convo, params):
                reply.append(piece)
                write(piece)
            write("\n")
        except KeyboardInterrupt:
            write(" [stopped]\n")
        except ColossusError as e:
            messages.pop()
            write(f"\n(error: {e})\n")
            continue
        dropped = getattr(backend, "dropped_turns", 0)
        if dropped:
            write(f"(the oldest {dropped} message(s) no longer fit in the context and were left out)\n")
        messages.append({"role": "assistant", "content": "".join(reply)})
