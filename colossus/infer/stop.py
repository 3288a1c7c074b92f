"""Stop strings on a stream of text: text that may be the start of a stop string is held back until
the next pieces show it is not (llama.cpp's rule), so a client never sees text that a stop string
later swallows, and a stop string split across tokens is still found."""

from __future__ import annotations


class StopMatcher:
    def __init__(self, stops: tuple[str, ...] | list[str]):
        self.stops = tuple(s for s in stops if s)
        self.held = ""  # text received but not yet released
        self.stopped = False

    def feed(self, text: str) -> tuple[str, bool]:
        """Take the next piece of text; return (text safe to release now, whether a stop string ended
        the stream). Once stopped, what followed the stop string is dropped."""
        if self.stopped:
            return "", True
        if not self.stops:
            return text, False
        buf = self.held + text
        cut = min((i for i in (buf.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.held, self.stopped = "", True
            return buf[:cut], True
        keep = self._partial_tail(buf)
        self.held = buf[len(buf) - keep:] if keep else ""
        return buf[:len(buf) - keep], False

    def flush(self) -> str:
        """The stream ended without a stop string: release what was held back."""
        out, self.held = self.held, ""
        return "" if self.stopped else out

    def _partial_tail(self, buf: str) -> int:
        """Length of the longest end of buf that is a proper prefix of some stop string."""
        best = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(buf)), best, -1):
                if buf.endswith(s[:n]):
                    best = n
                    break
        return best
