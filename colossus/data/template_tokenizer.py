"""An imported model's own tokenizer and chat template, behind the interface of our Tokenizer.

    tok = TemplateTokenizer.from_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")
    tok = TemplateTokenizer.from_hf_folder("path/to/Qwen3-0.6B")     # tokenizer.json + tokenizer_config.json
    ids = tok.render_prompt([{"role": "user", "content": "Hi"}])     # the model's template, ready to answer

The template is the model's Jinja text (tokenizer_config.json's chat_template, or the GGUF's
tokenizer.chat_template), rendered in Jinja's immutable sandbox as transformers renders it
(add_generation_prompt, bos_token, eos_token, raise_exception); its special tokens are read as one id each.
The stop ids are the end-of-turn tokens: the eos id(s) of generation_config.json / tokenizer_config.json, or
the GGUF's tokenizer.ggml.eos_token_id (and eot_token_id). The engine, the server and the chats call
colossus.data.chat_template.render_prompt, which hands such a tokenizer its own template."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, normalizers

from colossus.errors import ColossusError

ROLES = ("system", "user", "assistant")  # what any model's template takes; our tool roles need our template


def _raise(message: str):
    raise ColossusError(f"the model's chat template refused the conversation: {message}")


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
                 pad_id: int | None = None):
        if not template:
            raise ColossusError("the model has no chat template (tokenizer_config.json's chat_template, or the "
                                "GGUF's tokenizer.chat_template)")
        from jinja2.exceptions import TemplateSyntaxError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.hf = hf
        if _prepends_a_space(hf):
            # a tokenizer.json that puts a space in front of each text (ours, exported: export_hf.py) and takes it
            # off in its decoder: decode_raw keeps it, as ours does, so that a stream restarted mid-reply keeps its
            # spaces; decode and the stream decoder take the first one off
            self.leading_space = True
            hf.decoder = decoders.ByteLevel()
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        try:
            self.template = env.from_string(template)
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
        return cls(tokenizer_from_gguf(f), chat_template(f), [i for i in eos if i >= 0], bos if bos >= 0 else None)

    @classmethod
    def from_hf_folder(cls, folder: str | Path) -> TemplateTokenizer:
        folder = Path(folder)
        try:
            hf = HFTokenizer.from_file(str(folder / "tokenizer.json"))
            config = json.loads((folder / "tokenizer_config.json").read_text())
        except (OSError, ValueError) as e:
            raise ColossusError(f"{folder}: tokenizer.json and tokenizer_config.json are needed: {e}") from e
        template = config.get("chat_template")
        if isinstance(template, list):  # several named templates: the default one
            template = next((t["template"] for t in template if t.get("name") == "default"), None)
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
        return cls(hf, template, eos, gen.get("bos_token_id"), gen.get("pad_token_id"))

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def render_prompt(self, messages: list[dict]) -> list[int]:
        """The ids of the conversation, opened for the assistant's reply, through the model's own template."""
        for m in messages:
            if m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise ColossusError(f"bad message {m!r}: this model's template takes roles {', '.join(ROLES)} "
                                    f"with string content")
        token = self.hf.id_to_token
        text = self.template.render(messages=messages, add_generation_prompt=True,
                                    bos_token=token(self.bos) or "", eos_token=token(self.end) or "")
        return self.hf.encode(text, add_special_tokens=False).ids

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
