"""The rich view's bottom area: the line streaming now and the status line under it.

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

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from core.status import LiveStatus

__all__ = ["LiveArea"]

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
