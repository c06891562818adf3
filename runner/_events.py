"""The buffer behind `PhaseHandle.events()`: a bounded queue the router feeds.

Nothing is kept until `events()` is first called (a caller that never reads costs nothing);
then messages are kept up to `max_bytes` (a stream batch weighs its `size`, a record
`RECORD_WEIGHT`), and past that new ones are dropped and counted. The final `VerdictReached`
always fits (the oldest messages make room) and ends the iteration.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator
from typing import Any

from messages.records import VerdictReached

RECORD_WEIGHT = 512
MAX_BYTES = 16 << 20


class EventBuffer:
    """Bounded, thread-safe; `put` never blocks."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._max = max_bytes
        self._items: collections.deque[tuple[Any, int]] = collections.deque()
        self._cond = threading.Condition()
        self._used = 0
        self._open = False
        self._ended = False
        self.dropped = 0

    def put(self, message: Any) -> None:
        """Keep the message if `events()` was called and it fits (the verdict always does)."""
        final = isinstance(message, VerdictReached)
        weight = getattr(message, "size", 0) or RECORD_WEIGHT
        with self._cond:
            if self._ended or not (self._open or final):
                return
            if self._items and self._used + weight > self._max:
                if not final:
                    self.dropped += 1
                    return
                while self._items and self._used + weight > self._max:
                    self._used -= self._items.popleft()[1]
                    self.dropped += 1
            self._items.append((message, weight))
            self._used += weight
            self._ended = final
            self._cond.notify_all()

    def end(self) -> None:
        """No more messages will come (the phase is over, even without a verdict)."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def open(self) -> None:
        """Start keeping messages."""
        with self._cond:
            self._open = True

    def read(self, timeout: float | None) -> Iterator[Any]:
        """Yield messages until the verdict (`TimeoutError` after `timeout` seconds without
        one)."""
        while (message := self._next(timeout)) is not None:
            yield message
            if isinstance(message, VerdictReached):
                return

    def _next(self, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._ended:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no event within {timeout}s")
                self._cond.wait(remaining)
            message, weight = self._items.popleft()
            self._used -= weight
            return message
