"""ObserverActor: runs an embedder's `on_event` callback on a thread of its own.

The callback sees every message the phase publishes, in order, but never on a producer's
thread: a slow callback delays only this actor's inbox, which drops stream batches (`Tracked`)
past its bound and counts them (the count is logged with the verdict; records always pass).
An exception in the callback is logged, never fatal. The actor stops itself after the final
`VerdictReached`, on a daemon thread, so an embedder that is still catching up never keeps the
phase's result or the process waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors._supervised import Report, SupervisedActor
from actors.logs import logger
from messages.records import VerdictReached


class ObserverActor(SupervisedActor):
    """Hands each message to the embedder's callback."""

    use_daemon_thread = True

    def __init__(self, *, on_event: Callable[[Any], None], report: Report | None = None) -> None:
        super().__init__(report=report)
        self._on_event = on_event

    def on_receive(self, message: Any) -> None:
        """Call back; after the verdict, stop."""
        try:
            self._on_event(message)
        except Exception:  # the embedder's callback must not break the phase
            logger.exception("on_event callback failed")
        if isinstance(message, VerdictReached):
            if self.actor_inbox.dropped_total:
                logger.warning(
                    "on_event was behind: it missed {} batch(es)", self.actor_inbox.dropped_total
                )
            self.stop()
