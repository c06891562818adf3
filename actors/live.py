"""The rich view's bottom area: the line streaming now and the status line under it; with
`--parallel`, a table of the phases instead (`LiveBoard`).

In rich mode on a terminal the renderer prints through `LiveArea` instead of straight to the
console. Complete lines go to the scrollback above (`console.print`); the text of a line still
streaming and the status line (`core.status.LiveStatus`) stay in a `rich.live.Live` region at
the bottom, redrawn four times a second (so the elapsed time and a retry countdown move while
nothing else does) and cleared when the renderer stops. The status never mixes with the
scrollback: what is printed above is exactly what plain mode prints, styled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from core.status import LiveStatus

__all__ = ["BoardRelay", "LiveArea", "LiveBoard"]

REFRESH_PER_SECOND = 4


class LiveArea:
    """Scrollback above, the streaming line and the status below (see the module doc)."""

    def __init__(self, console: Console, clock_ms: Callable[[], int]) -> None:
        self.status = LiveStatus(clock_ms())
        self._clock_ms = clock_ms
        self._console = console
        self._lock = threading.Lock()  # the refresh thread reads what the actor thread writes
        self._partial = Text()
        self._live = Live(
            self,
            console=console,
            transient=True,
            auto_refresh=True,
            refresh_per_second=REFRESH_PER_SECOND,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def __rich__(self) -> Group:
        """What the bottom region shows now (called by the refresh thread)."""
        with self._lock:
            partial = self._partial.copy()
        status = Text(self.status.line(self._clock_ms()), style="dim")
        return Group(partial, status) if partial.plain else Group(status)

    def write(self, text: Text) -> None:
        """Inline text: whole lines go above, the rest waits below for its end."""
        with self._lock:
            pending = self._partial + text
            lines = pending.split("\n", allow_blank=True)
            self._partial = lines[-1] if lines else Text()
        for line in lines[:-1]:
            self._live.console.print(line)

    def line(self, text: Text) -> None:
        """A whole line, after what was streaming (the view ends an open line first)."""
        with self._lock:
            pending, self._partial = self._partial, Text()
        self._live.console.print(pending + text if pending.plain else text)

    def refresh(self) -> None:
        """Redraw now (after a batch: the state changed)."""
        self._live.refresh()

    def stop(self) -> None:
        """Print what was still streaming, clear the region."""
        with self._lock:
            pending, self._partial = self._partial, Text()
        if pending.plain:
            self._live.console.print(pending)
        self._live.stop()


class LiveBoard:
    """`--parallel` on a terminal: one live table, a row per phase (name, state, attempt,
    elapsed, steps, tokens, cost); each phase's renderer updates its row and prints only its
    verdict above (the full output of every phase is in its transcript). The table stays on
    screen at the end, as the batch's summary."""

    def __init__(self, console: Console, clock_ms: Callable[[], int]) -> None:
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._rows: dict[str, LiveStatus] = {}
        self._live = Live(self, console=console, refresh_per_second=REFRESH_PER_SECOND)
        self._live.start()

    def row(self, name: str) -> LiveStatus:
        """The row of phase `name` (added now; a name seen before gets a number)."""
        with self._lock:
            key = name
            number = 1
            while key in self._rows:
                number += 1
                key = f"{name} ({number})"
            status = self._rows[key] = LiveStatus(self._clock_ms())
        return status

    def print(self, text: Text) -> None:
        """A line above the table."""
        self._live.console.print(text)

    def refresh(self) -> None:
        """Redraw now."""
        self._live.refresh()

    def stop(self) -> None:
        """Draw the table a last time and leave it."""
        self._live.stop()

    def __rich__(self) -> Table:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("phase", "state", "attempt", "elapsed", "steps", "tokens", "cost"):
            table.add_column(column, justify="left" if column in ("phase", "state") else "right")
        now = self._clock_ms()
        with self._lock:
            rows = list(self._rows.items())
        for name, status in rows:
            shown = status.fields(now)
            keys = ("state", "attempt", "elapsed", "steps", "tokens", "cost")
            table.add_row(name, *(shown[key] for key in keys))
        return table


class BoardRelay:
    """A live table's stand-in where the table is not (a Ray node): the renderer updates its
    one row and prints the verdict here, and `drain` hands both to the real table."""

    def __init__(self, clock_ms: Callable[[], int]) -> None:
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self.status: LiveStatus | None = None
        self._printed: list[Any] = []

    def row(self, _name: str) -> LiveStatus:
        """The phase's row (one per relay)."""
        self.status = LiveStatus(self._clock_ms())
        return self.status

    def print(self, text: Any) -> None:
        """A line above the table (rich `Text`, passed on as it is)."""
        with self._lock:
            self._printed.append(text)

    def drain(self) -> dict[str, Any]:
        """The row's snapshot and the lines printed since the last drain."""
        with self._lock:
            printed, self._printed = self._printed, []
        status = self.status
        return {"status": status.snapshot(self._clock_ms()) if status else None, "printed": printed}
