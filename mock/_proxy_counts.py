"""The fault proxy's counters and the waits on them (a base of `FaultProxy`).

Every counter is read and changed under the proxy's one condition variable, which the handler
threads notify; a test waits on a count instead of sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Counters:
    """What the proxy did so far: streams opened and open, events relayed, refusals."""

    _cond: threading.Condition
    _events: int
    _streams_opened: int
    _refused: int
    _streams: set[Any]

    @property
    def events_relayed(self) -> int:
        """Complete SSE events relayed to clients, over all streams."""
        with self._cond:
            return self._events

    @property
    def streams_opened(self) -> int:
        """Event streams whose response headers reached a client."""
        with self._cond:
            return self._streams_opened

    @property
    def open_streams(self) -> int:
        """Event streams open right now."""
        with self._cond:
            return len(self._streams)

    @property
    def connections_refused(self) -> int:
        """Connections reset inside a `refuse_for` window."""
        with self._cond:
            return self._refused

    def wait_for_streams(self, n: int, timeout: float) -> None:
        """Block until `n` event streams have been opened in all; TimeoutError otherwise."""
        self._wait(lambda: self._streams_opened >= n, f"{n} streams opened", timeout)

    def wait_for_events(self, n: int, timeout: float) -> None:
        """Block until `n` events have been relayed in all; TimeoutError otherwise."""
        self._wait(lambda: self._events >= n, f"{n} events relayed", timeout)

    def wait_for_refusals(self, n: int, timeout: float) -> None:
        """Block until `n` connections have been refused in all; TimeoutError otherwise."""
        self._wait(lambda: self._refused >= n, f"{n} connections refused", timeout)

    def _wait(self, predicate: Callable[[], bool], what: str, timeout: float) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout=timeout):
                raise TimeoutError(
                    f"FaultProxy: no {what} within {timeout}s (streams opened "
                    f"{self._streams_opened}, events {self._events}, refused {self._refused})"
                )
