"""Posts as they are stored, told to whoever listens (the live stream of the feed, GET /v1/posts/stream).

    sub = feed.broadcast.subscribe(wake=lambda: loop.call_soon_threadsafe(event.set))
    ...                        # each ingest pushes its new posts, as (change number, post), then calls wake()
    items, lost_after = sub.take()
    sub.close()

Feed.ingest publishes inside its lock, after the store's commit, so every listener gets the posts in the order
of the store's log of changes. A listener holds at most `max_pending` posts not yet taken: past that (a client
too slow or stalled) its posts are dropped and take() answers the change number after which they were lost, to
be read again from the store (FeedStore.added_after), so memory stays bounded and nothing is lost. At most
`max_subscribers` listen at once (TooManySubscribers). No asyncio here: wake() is the listener's own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from colossus.errors import ColossusError
from colossus.feed.post import Post

MAX_SUBSCRIBERS = 64
MAX_PENDING = 1_000


class TooManySubscribers(ColossusError):
    """Every place for a listener is taken."""


class Subscription:
    """One listener: the posts pushed and not yet taken, at most max_pending."""

    def __init__(self, broadcast: Broadcast, wake: Callable[[], None], max_pending: int):
        self._broadcast, self._wake, self._max = broadcast, wake, max_pending
        self._lock = threading.Lock()
        self._items: list[tuple[int, Post]] = []
        self._lost_after: int | None = None  # the change before the first post dropped
        self.closed = False  # by close(), or by the feed closing

    def push(self, items: Sequence[tuple[int, Post]]) -> None:
        with self._lock:
            if self._lost_after is None and len(self._items) + len(items) > self._max:
                self._lost_after = (self._items[0][0] if self._items else items[0][0]) - 1
                self._items = []
            if self._lost_after is None:
                self._items.extend(items)
        self._wake()

    def take(self) -> tuple[list[tuple[int, Post]], int | None]:
        """The posts pushed since the last take, oldest first; and, when some were dropped, the change number
        after which they are to be read from the store (then the posts are [])."""
        with self._lock:
            items, lost = self._items, self._lost_after
            self._items, self._lost_after = [], None
        return items, lost

    def close(self) -> None:
        self.closed = True
        self._broadcast.unsubscribe(self)
        self._wake()


class Broadcast:
    """The listeners of one feed."""

    def __init__(self, max_subscribers: int = MAX_SUBSCRIBERS, max_pending: int = MAX_PENDING):
        self.max_subscribers, self.max_pending = max_subscribers, max_pending
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._subs)

    def subscribe(self, wake: Callable[[], None]) -> Subscription:
        with self._lock:
            if len(self._subs) >= self.max_subscribers:
                raise TooManySubscribers(f"the feed's live stream has its {self.max_subscribers} listeners already")
            sub = Subscription(self, wake, self.max_pending)
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish(self, items: Sequence[tuple[int, Post]]) -> None:
        if not items:
            return
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.push(items)

    def close(self) -> None:
        """Every listener is closed (and woken, to see it)."""
        with self._lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.close()
