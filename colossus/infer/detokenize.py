"""Token ids to text for a stream, one id at a time, in O(1) per id.

Byte-level BPE tokens are byte strings; a token may end in the middle of a UTF-8 character, so the
text of a stream is decoded incrementally and a partial character waits for the next token. The
bytes of every id are tabled once (what `Tokenizer.decode` would give, without re-decoding the whole
stream at every token), and the table also gives logprobs their token strings and bytes."""

from __future__ import annotations

import codecs

from colossus.data.tokenizer import Tokenizer
from colossus.infer.stop import StopMatcher


def _byte_level_alphabet() -> dict[str, int]:
    """The GPT-2 byte-level map (the one `tokenizers`' ByteLevel uses): character -> byte. Printable
    bytes stand for themselves; the others are shifted past 255, in byte order."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in kept]
    table = {chr(b): b for b in kept}
    table.update({chr(256 + n): b for n, b in enumerate(shifted)})
    return table


class TokenTable:
    """For every id of the model's vocabulary: the bytes it adds to text, and its display form."""

    def __init__(self, tok: Tokenizer, vocab_size: int):
        alphabet = _byte_level_alphabet()
        self.leading_space = tok.leading_space  # encode's added space, dropped again
        self.text_bytes: list[bytes] = []  # special tokens add nothing to text (as Tokenizer.decode)
        self.shown: list[tuple[str, list[int]]] = []  # (token, its bytes) for logprobs
        for i in range(vocab_size):
            piece = tok.id_to_token(i) if i < tok.vocab_size else None
            if piece is None:
                raw, shown = b"", b""
            elif i in tok.special_ids:
                raw, shown = b"", piece.encode()
            else:
                raw = bytes(alphabet[c] for c in piece if c in alphabet)
                shown = raw
            self.text_bytes.append(raw)
            self.shown.append((shown.decode("utf-8", errors="replace"), list(shown)))


class TextStream:
    """The text of one generated message: UTF-8 safe, the message's leading space dropped (as
    `Tokenizer.decode` drops it), and stop strings held back and cut (colossus.infer.stop)."""

    def __init__(self, table: TokenTable, stops: tuple[str, ...]):
        self.table = table
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.stop = StopMatcher(stops)
        self.started = False

    def push(self, token_id: int) -> tuple[str, bool]:
        """(text to release, whether a stop string matched) after one more token."""
        return self.stop.feed(self._text(self.utf8.decode(self.table.text_bytes[token_id])))

    def finish(self) -> str:
        """The stream ended (end of turn or length): whatever is still held back."""
        text, stopped = self.stop.feed(self._text(self.utf8.decode(b"", final=True)))
        return text if stopped else text + self.stop.flush()

    def _text(self, piece: str) -> str:
        if not self.started and piece:
            self.started = True
            if piece.startswith(" ") and self.table.leading_space:
                piece = piece[1:]
        return piece
