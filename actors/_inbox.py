"""An actor inbox with a byte bound on the stream path: pykka's `ActorInbox` (put, get, empty).

Theory of operation. Only messages that carry a `size` (the stream's batches: `EventsReceived`
and `Tracked`) weigh anything; control messages, records, asks and pykka's own stop weigh
nothing and are always admitted, so a stop or a verdict never waits behind a backlog's bound.
Until `limit()` is called the inbox is unbounded, like pykka's. Once limited, a weighed message
that would take the inbox past its capacity (while it holds anything at all, so one oversized
batch still passes) is handled by the edge's kind:

- **drop**: its type is listed as droppable (the socket reader must never block): it is
  dropped and counted, and the first drop since the consumer last looked queues the `lost`
  marker once, so the consumer learns at once that it must resync.
- **block**: the producer waits for room (backpressure: the consumer must not lose data). The
  wait ends when there is room, when the inbox is closed, or when its actor has stopped; it is
  logged every `WARN_EVERY` seconds so a stuck consumer is visible.

A consumer that fell behind takes the batches waiting right behind the one it handles
(`take_more`) and handles them as one: the slower it is, the larger its batches, so the cost
per message does not keep it behind (when opencode sends one event per write, each read of
the socket is a batch of one).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from actors.logs import logger

WARN_EVERY = 10.0
_SLICE = 0.5  # a blocked producer re-checks whether the consumer died this often


class _Letter:
    """An envelope of our own (pykka's loop reads only `message` and `reply_to`)."""

    __slots__ = ("message", "reply_to")

    def __init__(self, message: Any) -> None:
        self.message = message
        self.reply_to = None


class Inbox:
    """pykka's `ActorInbox`, bounded in bytes for the messages that have a `size`."""

    def __init__(self) -> None:
        self._items: collections.deque[tuple[Any, int]] = collections.deque()
        self._cond = threading.Condition()
        self._used = 0
        self._capacity: int | None = None
        self._droppable: tuple[type, ...] = ()
        self._lost_marker: Any = None
        self._marker_queued = False
        self._dropped = 0
        self.dropped_total = 0
        self._closed = False
        self._stopped: threading.Event | None = None
        self.name = "actor"

    def limit(
        self, capacity: int, *, droppable: tuple[type, ...] = (), lost_marker: Any = None
    ) -> None:
        """Bound the weighed messages to `capacity` bytes; `droppable` types drop when full."""
        with self._cond:
            self._capacity = capacity
            self._droppable = droppable
            self._lost_marker = lost_marker

    def bind(self, stopped: threading.Event, name: str) -> None:
        """The actor's stop event: producers blocked on a dead actor give up waiting."""
        self._stopped = stopped
        self.name = name

    @property
    def used(self) -> int:
        """Bytes of weighed messages waiting."""
        return self._used

    def take_dropped(self) -> int:
        """How many messages were dropped since the last call (and re-arm the marker)."""
        with self._cond:
            dropped, self._dropped = self._dropped, 0
            self._marker_queued = False
            return dropped

    def take_more(self, kind: type, limit: int) -> list[Any]:
        """The messages of exactly `kind` waiting at the head of the inbox (up to `limit`),
        taken out: a consumer that fell behind handles its backlog as one batch."""
        taken: list[Any] = []
        with self._cond:
            while self._items and len(taken) < limit:
                envelope, weight = self._items[0]
                if type(envelope.message) is not kind or envelope.reply_to is not None:
                    break
                self._items.popleft()
                self._used -= weight
                taken.append(envelope.message)
            if taken:
                self._cond.notify_all()
        return taken

    def close(self) -> None:
        """No producer waits from now on (the phase is ending)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- ActorInbox -------------------------------------------------------------------------------

    def put(self, envelope: Any, /) -> None:
        """Queue an envelope, dropping or waiting as the edge says when the bound is reached."""
        weight = getattr(envelope.message, "size", 0) if self._capacity is not None else 0
        with self._cond:
            if weight and self._full(weight):
                if isinstance(envelope.message, self._droppable):
                    self._drop()
                    return
                self._wait_for_room(weight)
            self._items.append((envelope, weight))
            self._used += weight
            self._cond.notify_all()

    def get(self) -> Any:
        """The oldest envelope; waits for one."""
        with self._cond:
            while not self._items:
                self._cond.wait()
            envelope, weight = self._items.popleft()
            self._used -= weight
            if weight:
                self._cond.notify_all()
            return envelope

    def empty(self) -> bool:
        """True when nothing waits."""
        return not self._items

    # -- under the condition ----------------------------------------------------------------------

    def _full(self, weight: int) -> bool:
        assert self._capacity is not None
        return self._used > 0 and self._used + weight > self._capacity

    def _drop(self) -> None:
        self._dropped += 1
        self.dropped_total += 1
        if self._lost_marker is not None and not self._marker_queued:
            self._marker_queued = True
            self._items.append((_Letter(self._lost_marker), 0))
            self._cond.notify_all()

    def _wait_for_room(self, weight: int) -> None:
        started = last_warning = time.monotonic()
        while self._full(weight) and not self._closed and not self._dead():
            self._cond.wait(_SLICE)
            now = time.monotonic()
            if now - last_warning >= WARN_EVERY:
                last_warning = now
                logger.warning(
                    "{} is {:.0f}s behind ({} bytes waiting); its producer waits",
                    self.name,
                    now - started,
                    self._used,
                )

    def _dead(self) -> bool:
        return self._stopped is not None and self._stopped.is_set()
