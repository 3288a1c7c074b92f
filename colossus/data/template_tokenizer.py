"""An imported model's own tokenizer and chat template, behind the interface of our Tokenizer.

    tok = TemplateTokenizer.from_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")
    tok = TemplateTokenizer.from_hf_folder("path/to/Qwen3-0.6B")     # tokenizer.json + tokenizer_config.json
    ids = tok.render_prompt([{"role": "user", "content": "Hi"}])     # the model's template, ready to answer
    ids = tok.render_prompt(messages, tools=[{"type": "function", "function": {...}}])   # tools offered

The template is the model's Jinja text (tokenizer_config.json's chat_template, or the GGUF's
tokenizer.chat_template; of several named ones, "tool_use" when tools are given, else "default"), rendered in
Jinja's immutable sandbox as transformers' apply_chat_template renders it: its variables (messages, tools,
documents, add_generation_prompt, bos_token, eos_token), its tojson (no HTML escaping, keys in order), the
loop controls, raise_exception and strftime_now, and messages without their null fields (an assistant message
that only calls tools has no content). Assistant messages may carry tool_calls and tool messages a
tool_call_id, as the template reads them. Its special tokens are read as one id each.
The stop ids are the end-of-turn tokens: the eos id(s) of generation_config.json / tokenizer_config.json, or
the GGUF's tokenizer.ggml.eos_token_id (and eot_token_id). The engine, the server and the chats call
colossus.data.chat_template.render_prompt, which hands such a tokenizer its own template."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, normalizers

from colossus.errors import ColossusError

ROLES = ("system", "user", "assistant", "tool")  # what a model's template takes (OpenAI's roles)


def _raise(message: str):
    raise ColossusError(f"the model's chat template refused the conversation: {message}")


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    """transformers' tojson: Jinja's own escapes HTML characters and sorts the keys."""
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _environment():
    """The sandbox as transformers sets it up for chat templates."""
    from jinja2 import nodes
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):
        """{% generation %}...{% endgeneration %} marks what the assistant wrote (training masks): rendered as is."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: dt.datetime.now().strftime(fmt)
    return env


def _prepends_a_space(hf: HFTokenizer) -> bool:
    """The tokenizer.json writes a space in front of each text and its byte-level decoder strips it (ours,
    exported: export_hf.tokenizer_json)."""
    if not (isinstance(hf.normalizer, normalizers.Prepend) and hf.normalizer.prepend == " "):
        return False
    steps = (json.loads(hf.to_str()).get("decoder") or {}).get("decoders") or []
    return [d.get("type") for d in steps] == ["ByteLevel", "Strip"] and steps[1].get("start") == 1


class TemplateTokenizer:
    leading_space = False  # encode adds no space in front (ours does; decode takes it off again), unless the
    # tokenizer.json's normalizer is Prepend(" ") (ours, exported)

    def __init__(self, hf: HFTokenizer, template: str | None, eos_ids: Iterable[int], bos_id: int | None = None,
                 pad_id: int | None = None, tool_template: str | None = None):
        if not template:
            raise ColossusError("the model has no chat template (tokenizer_config.json's chat_template, or the "
                                "GGUF's tokenizer.chat_template)")
        from jinja2.exceptions import TemplateSyntaxError

        self.hf, self.template_text, self.tool_template_text = hf, template, tool_template
        if _prepends_a_space(hf):
            # a tokenizer.json that puts a space in front of each text (ours, exported: export_hf.py) and takes it
            # off in its decoder: decode_raw keeps it, as ours does, so that a stream restarted mid-reply keeps its
            # spaces; decode and the stream decoder take the first one off
            self.leading_space = True
            hf.decoder = decoders.ByteLevel()
        env = _environment()
        try:
            self.template = env.from_string(template)
            self.tool_template = env.from_string(tool_template) if tool_template else self.template
        except TemplateSyntaxError as e:
            raise ColossusError(f"the model's chat template is not valid Jinja: {e}") from e
        self.special = {t.content: i for i, t in hf.get_added_tokens_decoder().items() if t.special}
        self.special_ids = frozenset(self.special.values())
        self.stop_ids = frozenset(eos_ids)
        if not self.stop_ids:
            raise ColossusError("the model names no end-of-turn token (eos_token_id)")
        self.end = min(self.stop_ids)
        self.bos = bos_id if bos_id is not None else self.end
        self.pad = pad_id if pad_id is not None else self.end

    @classmethod
    def from_gguf(cls, path: str | Path) -> TemplateTokenizer:
        from colossus.model.gguf_file import GGUFFile, chat_template, tokenizer_from_gguf

        f = GGUFFile(path)
        eos = [int(f.value(k, -1)) for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id")]
        bos = int(f.value("tokenizer.ggml.bos_token_id", -1))
        return cls(tokenizer_from_gguf(f), chat_template(f), [i for i in eos if i >= 0], bos if bos >= 0 else None,
                   tool_template=chat_template(f, "tool_use"))

    @classmethod
    def from_hf_folder(cls, folder: str | Path) -> TemplateTokenizer:
        folder = Path(folder)
        try:
            hf = HFTokenizer.from_file(str(folder / "tokenizer.json"))
            config = json.loads((folder / "tokenizer_config.json").read_text())
        except (OSError, ValueError) as e:
            raise ColossusError(f"{folder}: tokenizer.json and tokenizer_config.json are needed: {e}") from e
        template, tool_template = config.get("chat_template"), None
        if isinstance(template, list):  # several named templates: the default one, and the one for tools
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template, tool_template = named.get("default"), named.get("tool_use")
        if template is None and (folder / "chat_template.jinja").exists():
            template = (folder / "chat_template.jinja").read_text()
        gen = {}
        if (folder / "generation_config.json").exists():
            gen = json.loads((folder / "generation_config.json").read_text())
        eos = gen.get("eos_token_id")
        if eos is None:
            name = config.get("eos_token")
            name = name.get("content") if isinstance(name, dict) else name
            eos = hf.token_to_id(name) if name else None
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        return cls(hf, template or tool_template, eos, gen.get("bos_token_id"), gen.get("pad_token_id"), tool_template)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def render_prompt(self, messages: list[dict], tools: list[dict] | None = None, prefill: str = "") -> list[int]:
        """The ids of the conversation, opened for the assistant's reply, through the model's own template; prefill:
        text the reply starts with (a forced tool call's opening), encoded with the prompt."""
        return self.hf.encode(self.render_text(messages, tools) + prefill, add_special_tokens=False).ids

    def render_text(self, messages: list[dict], tools: list[dict] | None = None) -> str:
        """The prompt as text: apply_chat_template(messages, tools=tools, add_generation_prompt=True,
        tokenize=False)."""
        return self._text(messages, True, tools)

    def render(self, messages: list[dict]) -> tuple[list[int], list[int]]:
        """ids of a whole conversation through the model's template, and loss weights: 1 on the tokens of each
        assistant message (what the template writes for it, its end-of-turn included), 0 on the rest. A message's
        tokens are what rendering the conversation up to it adds to the prompt that asks for it, so the template
        must render each conversation as a prefix of the next (a ColossusError where it does not)."""
        full = self._text(messages, False)
        spans = []
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            asked, answered = self._text(messages[:i], True), self._text(messages[:i + 1], False)
            if not (answered.startswith(asked) and full.startswith(answered)):
                raise ColossusError(f"the model's chat template does not render message {i + 1} after the prompt "
                                    "that asks for it, so its tokens cannot be told apart for fine-tuning")
            spans.append((len(asked), len(answered)))
        enc = self.hf.encode(full, add_special_tokens=False)
        weights = [int(any(a <= start < b for a, b in spans)) for start, _ in enc.offsets]
        return enc.ids, weights

    @property
    def template_source(self) -> str:
        """Every template's text (what colossus.assistant.tool_parsers reads to pick a format)."""
        return self.template_text + (self.tool_template_text or "")

    def chat_templates(self) -> str | list[dict]:
        """tokenizer_config.json's chat_template: the template, or the named ones ("default" and "tool_use")."""
        if self.tool_template_text is None:
            return self.template_text
        return [{"name": "default", "template": self.template_text},
                {"name": "tool_use", "template": self.tool_template_text}]

    def save(self, folder: str | Path) -> None:
        """tokenizer.json, tokenizer_config.json (the chat template(s), bos and eos) and generation_config.json (the
        stop ids): what from_hf_folder reads back, and what transformers reads."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.hf.save(str(folder / "tokenizer.json"))
        token = self.hf.id_to_token
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "chat_template": self.chat_templates(),
                  "bos_token": token(self.bos), "eos_token": token(self.end), "pad_token": token(self.pad)}
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
        gen = {"bos_token_id": self.bos, "eos_token_id": sorted(self.stop_ids), "pad_token_id": self.pad}
        (folder / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")

    def _text(self, messages: list[dict], add_generation_prompt: bool, tools: list[dict] | None = None) -> str:
        kept = []
        for m in messages:
            m = {k: v for k, v in m.items() if v is not None}  # as transformers drops them
            if m.get("role") not in ROLES or not isinstance(m.get("content", ""), str) or \
                    ("content" not in m and not m.get("tool_calls")):
                raise ColossusError(f"bad message {m!r}: this model's template takes roles {', '.join(ROLES)} "
                                    f"with string content (none only for an assistant message with tool_calls)")
            kept.append(m)
        token = self.hf.id_to_token
        template = self.template if tools is None else self.tool_template
        return template.render(messages=kept, tools=tools, documents=None, add_generation_prompt=add_generation_prompt,
                               bos_token=token(self.bos) or "", eos_token=token(self.end) or "")

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[int]]:
        enc = self.hf.encode(text, add_special_tokens=False)
        return enc.ids, [start for start, _ in enc.offsets]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        text = self.decode_raw(ids)
        return text[1:] if self.leading_space and text.startswith(" ") else text

    def decode_raw(self, ids: Iterable[int]) -> str:
        return self.hf.decode([i for i in ids if i not in self.special_ids], skip_special_tokens=False)

    def id_to_token(self, i: int) -> str | None:
        return self.hf.id_to_token(i)
