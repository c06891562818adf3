"""StreamHub: one SSE reader, many phases. Hands the stream to every phase's tracker.

With `--parallel`, every phase on the shared server watches the same `/event` stream: the
reader hands each batch and each piece of stream news (connected, dropped, failed) to the hub
once, on the reader's thread, and the hub `tell`s it to every subscribed tracker (each keeps
only its own session tree and passes the news on, in order with its batches). The trackers'
inboxes drop batches rather than block, so the reader never waits for a phase. A phase that
subscribes while the stream is up is told at once, so it can send its prompt without waiting
for a reconnect; one that subscribes after the stream failed is told that. Subscribing and the
news are handled under one lock, so every tracker sees the news in the order they happened
(they are control messages: telling them never blocks). A hub whose stream failed is not
reused: the next phase starts a fresh one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pykka

from actors.worker import tell_quietly
from messages.stream import Reconnect, StreamConnected, StreamDropped, StreamFailed

Consumer = Callable[[Any], None]


class StreamHub:
    """Thread-safe fan-out of one event stream (subscribers are swapped, never mutated)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[Consumer, ...] = ()
        self._state: StreamConnected | StreamFailed | None = None
        self._reader: pykka.ActorRef | None = None

    def attach(self, reader: pykka.ActorRef) -> None:
        """The reader whose stream this hub hands on (for `reconnect`)."""
        self._reader = reader

    def reconnect(self, reason: str) -> None:
        """Ask the reader to reopen the stream (it only `tell`s: never waits)."""
        if self._reader is not None:
            tell_quietly(self._reader, Reconnect(reason=reason))

    @property
    def failed(self) -> bool:
        """True once the reader gave up: this hub must not be handed to a new phase."""
        return isinstance(self._state, StreamFailed)

    def subscribe(self, tracker: Consumer) -> Callable[[], None]:
        """Add a phase's tracker, telling it where the stream stands; returns the undo."""
        with self._lock:
            if self._state is not None:
                tracker(self._state)
            self._subscribers = (*self._subscribers, tracker)
        return lambda: self._remove(tracker)

    def on_events(self, batch: Any) -> None:
        """The reader's batch, to every tracker."""
        for tracker in self._subscribers:
            tracker(batch)

    def on_news(self, message: Any) -> None:
        """Connected, dropped or failed: to every tracker (the connection is remembered)."""
        with self._lock:
            if not self.failed:
                self._state = None if isinstance(message, StreamDropped) else message
            for tracker in self._subscribers:
                tracker(message)

    def _remove(self, tracker: Consumer) -> None:
        with self._lock:
            self._subscribers = tuple(t for t in self._subscribers if t is not tracker)
