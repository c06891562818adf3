"""Message and part ids made by the client, in opencode's ascending form (pure).

opencode's ids sort by creation time: `msg_` (or `prt_`), then 12 hex digits of
`milliseconds * 0x1000 + a counter` (the low 48 bits), then 14 random base62 characters. A
prompt that carries its own message and part id can be sent twice without being stored twice
(measured on opencode 1.18.33: the second POST updates the same message and part), which is
what makes resending a prompt that may have been lost safe (`core._prompt_watch`).
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable

__all__ = ["AscendingIds"]

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_STAMP = 0xFFFFFFFFFFFF  # 48 bits: 12 hex digits


class AscendingIds:
    """Makes ascending ids; each later than the one before, and than any id given as `after`.

    `clock_ms`: the wall clock in milliseconds (opencode stamps its ids with the wall time)."""

    def __init__(
        self,
        clock_ms: Callable[[], int],
        choice: Callable[[str], str] = secrets.choice,
    ) -> None:
        self._clock_ms = clock_ms
        self._choice = choice
        self._last = 0

    def next(self, prefix: str, after: str | None = None) -> str:
        """A new id with `prefix` (`msg`, `prt`) that sorts after every earlier one."""
        now = (self._clock_ms() * 0x1000) & _STAMP  # opencode keeps the low 48 bits too
        stamp = max(now, self._last + 1, _stamp_of(after) + 1)
        self._last = stamp
        tail = "".join(self._choice(_BASE62) for _ in range(14))
        return f"{prefix}_{stamp:012x}{tail}"


def _stamp_of(found: str | None) -> int:
    """The time stamp of an ascending id, or 0 when it has none."""
    if not found or "_" not in found:
        return 0
    try:
        return int(found.split("_", 1)[1][:12], 16)
    except ValueError:
        return 0
