"""The journal: every request the mock saw, in arrival order, for tests to wait on."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# kind: "turn" (agent loop), "title", "summary", "models", or "other" (404s, bad bodies).
KINDS = ("turn", "title", "summary", "models", "other")


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalEntry:
    """One request: what it was, which turn and attempt it got, and the status sent.

    `branch` is the `match` text of the subagent branch that answered a turn request, None
    for the main turns and for every other kind.
    """

    index: int
    time: float
    kind: str
    turn: int | None
    attempt: int | None
    fault: str | None
    status: int
    body: Any
    headers: Mapping[str, str]
    branch: str | None = None


class Journal:
    """A thread-safe, append-only list of `JournalEntry` with blocking waits."""

    def __init__(self) -> None:
        self._entries: list[JournalEntry] = []
        self._changed = threading.Condition()

    def record(self, **fields: Any) -> JournalEntry:
        """Append an entry (index assigned here) and wake every waiter."""
        with self._changed:
            entry = JournalEntry(index=len(self._entries), **fields)
            self._entries.append(entry)
            self._changed.notify_all()
        return entry

    def entries(self) -> tuple[JournalEntry, ...]:
        """A snapshot of every entry so far."""
        with self._changed:
            return tuple(self._entries)

    def turns(self) -> tuple[JournalEntry, ...]:
        """A snapshot of the agent-loop entries only (kind "turn")."""
        return tuple(entry for entry in self.entries() if entry.kind == "turn")

    def attempts(self) -> dict[tuple[str | None, int], int]:
        """Raw requests per logical turn: `(branch, turn index)` -> how many came (a provider
        retry by opencode is one more request for the same turn)."""
        counts: dict[tuple[str | None, int], int] = {}
        for entry in self.turns():
            key = (entry.branch, entry.turn or 0)
            counts[key] = counts.get(key, 0) + 1
        return counts

    def wait_for(
        self,
        until: int | Callable[[tuple[JournalEntry, ...]], bool],
        timeout: float,
    ) -> tuple[JournalEntry, ...]:
        """Block until `until` turn entries exist (or `until(entries)` holds); return entries."""
        if isinstance(until, int):
            count = until

            def ready(entries: tuple[JournalEntry, ...]) -> bool:
                return sum(entry.kind == "turn" for entry in entries) >= count
        else:
            ready = until
        with self._changed:
            if not self._changed.wait_for(lambda: ready(tuple(self._entries)), timeout):
                raise TimeoutError(f"journal condition not met within {timeout} s")
            return tuple(self._entries)
