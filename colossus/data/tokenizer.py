"""Byte-level BPE (the `tokenizers` library), trained on the corpus and saved as tokenizer.json.

Special tokens mark documents and chat roles; they are reachable only through their ids, never from
text: a user who types "<|assistant|>" gets those characters, not a role switch.

Every text is encoded with one space in front (and decoded without it), so a word is the same token
at the start of a message as in the middle of a sentence ("Sitor" and " Sitor" would otherwise be
two different spellings of one name)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from colossus.errors import ColossusError

SPECIAL_TOKENS = ("<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>",
                  "<|tool_call|>", "<|tool_result|>", "<|pad|>")


class Tokenizer:
    leading_space = True  # encode writes a space in front of the text, and decode takes it off again

    def __init__(self, hf: HFTokenizer):
        self.hf = hf
        self.hf.encode_special_tokens = True  # special strings inside text are plain text
        missing = [t for t in SPECIAL_TOKENS if hf.token_to_id(t) is None]
        if missing:
            raise ColossusError(f"tokenizer lacks special tokens {missing}; train it with `colossus data`")
        self.special = {t: hf.token_to_id(t) for t in SPECIAL_TOKENS}
        self.bos, self.end, self.pad = self.special["<|bos|>"], self.special["<|end|>"], self.special["<|pad|>"]
        self.special_ids = frozenset(self.special.values())

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2) -> Tokenizer:
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        hf.train_from_iterator((" " + t for t in texts), trainer=trainer)  # as encode sees them
        return cls(hf)

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.exists():
            raise ColossusError(f"no tokenizer at {path}")
        try:
            return cls(HFTokenizer.from_file(str(path)))
        except Exception as e:  # the library raises a bare Exception on a corrupt file
            raise ColossusError(f"tokenizer {path} is corrupt: {e}") from e

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_suffix(".tmp")
        self.hf.save(str(tmp))
        tmp.replace(path)

    @property
    def stop_ids(self) -> frozenset[int]:
        """What ends a reply: the end of the message, or a new conversation."""
        return frozenset({self.end, self.bos})

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(" " + text, add_special_tokens=False).ids

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[int]]:
        """ids, and where each token starts in text (its first character)."""
        enc = self.hf.encode(" " + text, add_special_tokens=False)
        return enc.ids, [max(0, start - 1) for start, _ in enc.offsets]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch([" " + t for t in texts], add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        """The inverse of encode: the leading space encode added is removed."""
        text = self.decode_raw(ids)
        return text[1:] if text.startswith(" ") else text

    def decode_raw(self, ids: Iterable[int]) -> str:
        return self.hf.decode([i for i in ids if i not in self.special_ids], skip_special_tokens=False)

    def id_to_token(self, i: int) -> str | None:
        return self.hf.id_to_token(i)


class StreamDecoder:
    """Turns ids into text as they arrive, never emitting half a UTF-8 character: text that ends in
    an incomplete byte sequence is held back until the next id completes it."""

    def __init__(self, tok: Tokenizer):
        self.tok = tok
        self.ids: list[int] = []
        self.emitted = 0  # characters of decode_raw(ids) already returned
        self.started = False  # the leading space of the message is dropped, as decode does

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = self.tok.decode_raw(self.ids)
        if text.endswith("\ufffd"):
            return ""
        return self._emit(text, reset=len(self.ids) > 64)

    def flush(self) -> str:
        return self._emit(self.tok.decode_raw(self.ids), reset=True)

    def _emit(self, text: str, reset: bool) -> str:
        new = text[self.emitted:]
        self.emitted = len(text)
        if not self.started and new:
            self.started = True
            new = new[1:] if new.startswith(" ") and self.tok.leading_space else new
        if reset:  # keep the window short: restart after the last complete text
            self.ids, self.emitted = [], 0
        return new
