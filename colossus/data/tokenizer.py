"""Byte-level BPE (the `tokenizers` library), trained on the corpus and saved as tokenizer.json.

Special tokens mark documents and chat roles; they are reachable only through their ids, never from
text: a user who types "<|assistant|>" gets those characters, not a role switch.

Every text is encoded with one space in front (and decoded without it), so a word is the same token
at the start of a message as in the middle of a sentence ("Sitor" and " Sitor" would otherwise be
two different spellings of one name).

With `whole_words` (colossus.config.DataConfig.whole_word_min), every capitalised word that the corpus holds at
least that many times (the words of the names it knows) is one token of its own, and the BPE learns the text
without any capitalised word, merging only pairs held that many times. A capitalised word the corpus does not hold
that often (a name the model must copy from its context rather than know) is then spelled as a bare space, its
capital letter and lowercase pieces the text uses everywhere ("Druklopo" is "Ġ", "D", "r", "u", "k", "lo", ...).
Plain BPE splits it instead into the half-built merges on the way to some known word ("Gre", "Zid"), which the
training data hold a few dozen times, so that their embedding and head rows are barely trained and a model cannot
write them; the bare space is the same first token for every such word, and the copy head follows it to the letter."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from colossus.errors import ColossusError

SPECIAL_TOKENS = ("<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>",
                  "<|tool_call|>", "<|tool_result|>", "<|pad|>")


SPACED_WORD = re.compile(r" ([A-Z][a-z]+)(?!\w)")  # a capitalised word with its space, as the BPE sees it


def frequent_words(texts: list[str], n: int) -> list[str]:
    """The capitalised words that follow a space and are held at least n times, most frequent first."""
    counts = Counter(w for t in texts for w in SPACED_WORD.findall(t))
    return [w for w, c in counts.most_common() if c >= n]


def with_words(hf: HFTokenizer, words: list[str]) -> HFTokenizer:
    """hf with each word (and its leading space) one token: a vocabulary entry that the BPE takes whole, merges
    ignored (BPE's ignore_merges), where the pre-tokenizer hands it the word alone."""
    spec = json.loads(hf.to_str())
    vocab = spec["model"]["vocab"]
    next_id = max(vocab.values()) + 1
    for w in words:
        if "\u0120" + w not in vocab:
            vocab["\u0120" + w] = next_id
            next_id += 1
    spec["model"]["ignore_merges"] = True
    return HFTokenizer.from_str(json.dumps(spec))


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
    def train(cls, texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2,
              whole_words: int = 0) -> Tokenizer:
        """BPE of vocab_size tokens; whole_words > 0: each capitalised word held that many times is a token of its
        own, the BPE merges no capitalised word and only pairs held that many times (see the module's docstring)."""
        spaced = [" " + t for t in texts]  # as encode sees them
        words = frequent_words(spaced, whole_words) if whole_words else []
        if len(words) + len(SPECIAL_TOKENS) + 256 > vocab_size:
            raise ColossusError(f"{len(words)} words are held {whole_words} times or more, too many for a vocabulary "
                                f"of {vocab_size}: raise data.vocab_size or data.whole_word_min")
        if words:
            spaced = [SPACED_WORD.sub("", t) for t in spaced]  # no capitalised word: none is merged
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(words), min_frequency=max(min_frequency, whole_words),
                                      special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        hf.train_from_iterator(spaced, trainer=trainer)
        return cls(with_words(hf, words) if words else hf)

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
