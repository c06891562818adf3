"""Messages of the event stream: what the SSE reader reports and hands downstream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class EventsReceived:
    """The decoded events of one read of the stream, in order (a batch, for the hot path).
    `size` is the bytes read: what the batch weighs in a bounded inbox."""

    events: tuple[dict[str, Any], ...]
    connection: int
    size: int = 0
    texts: tuple[str, ...] = ()  # each event's JSON as received (when the reader kept it)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventsLost:
    """The consumer's inbox was full and dropped batches: what they carried must be resynced."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconnect:
    """To the reader: reopen the stream now (a phase saw it carry nothing while its session
    moved on); the reconnect and its resync follow as after any break."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamConnected:
    """`server.connected` arrived on connection number `connection` (1 = first)."""

    connection: int

    @property
    def is_reconnect(self) -> bool:
        """Every connection after the first lost events in between: resync."""
        return self.connection > 1


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamDropped:
    """The stream broke (EOF, truncated frame, watchdog, network); a retry follows."""

    connection: int
    reason: str
    retry_in: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamFailed:
    """The stream cannot be (re)opened: 401/404 or the reconnect budget is spent."""

    reason: str
