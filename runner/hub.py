"""StreamHub: one SSE reader, many phases. Fans batches and stream news out to subscribers.

With `--parallel`, every phase on the shared server watches the same `/event` stream: the
reader hands each batch to the hub once, and the hub hands it to every phase's tracker (each
tracker keeps only its own session tree). A phase that subscribes while the stream is up is
told at once, so it can send its prompt without waiting for a reconnect.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pykka

from messages.stream import EventsReceived, StreamConnected, StreamDropped, StreamFailed

Consumer = Callable[[Any], None]


class StreamHub:
    """Thread-safe fan-out of one event stream (subscribers are swapped, never mutated)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[tuple[Consumer, Consumer], ...] = ()
        self._connected: StreamConnected | None = None
        self._failed: StreamFailed | None = None

    def subscribe(self, *, events: Consumer, news: Consumer) -> Callable[[], None]:
        """Add a phase; returns the function that removes it."""
        pair = (events, news)
        with self._lock:
            self._subscribers = (*self._subscribers, pair)
            connected, failed = self._connected, self._failed
        if failed is not None:
            _quietly(news, failed)
        elif connected is not None:
            _quietly(news, connected)
        return lambda: self._remove(pair)

    def on_events(self, batch: EventsReceived) -> None:
        """The reader's batch, to every tracker."""
        for events, _ in self._subscribers:
            _quietly(events, batch)

    def on_news(self, message: Any) -> None:
        """Connected, dropped or failed: to every phase (and remembered for late joiners)."""
        with self._lock:
            if isinstance(message, StreamConnected):
                self._connected = message
            elif isinstance(message, StreamDropped):
                self._connected = None
            elif isinstance(message, StreamFailed):
                self._failed = message
        for _, news in self._subscribers:
            _quietly(news, message)

    def _remove(self, pair: tuple[Consumer, Consumer]) -> None:
        with self._lock:
            self._subscribers = tuple(p for p in self._subscribers if p is not pair)


def _quietly(consumer: Consumer, message: Any) -> None:
    with contextlib.suppress(pykka.ActorDeadError):
        consumer(message)
