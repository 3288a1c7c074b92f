"""What a request asks of the search tool: xAI's Live Search `search_parameters`, checked. Kept apart from the
loop so that the server reads them without loading the engine.

    mode                "off" (never search), "auto" (the model decides; the default), "on" (search the user's
                        question before the model writes anything)
    from_date, to_date  bound every search of the answer (UTC days, inclusive)
    max_search_results  posts one search returns at most (here 3 unless asked: a small model's context holds
                        a few posts, and the loop cuts results to what fits in any case)
    return_citations    whether the answer lists its citations
    included_handles, excluded_handles   the "x" source's included_x_handles and excluded_x_handles"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

MODES = ("off", "auto", "on")
DEFAULT_RESULTS = 3


@dataclass(frozen=True)
class SearchParameters:
    mode: str = "auto"
    from_date: dt.datetime | None = None
    to_date: dt.datetime | None = None
    max_search_results: int = DEFAULT_RESULTS
    return_citations: bool = True
    included_handles: tuple[str, ...] = ()
    excluded_handles: tuple[str, ...] = ()


def end_of_day(t: dt.datetime, written: str) -> dt.datetime:
    """A to_date given as a day alone (YYYY-MM-DD) means the whole of that day."""
    return t.replace(hour=23, minute=59, second=59) if len(written.strip()) == 10 else t
