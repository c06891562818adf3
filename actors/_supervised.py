"""SupervisedActor: a pykka actor whose crash leaves its reason where the supervisor looks.

pykka calls `on_failure` (not `on_stop`) when a handler raises, then the actor is dead and
its state unreachable. The reason is kept in a small registry keyed by the actor's URN, so the
supervisor, which notices the dead reference, can end the phase with the actual error.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka
from loguru import logger

_lock = threading.Lock()
_reasons: dict[str, str] = {}


class SupervisedActor(pykka.ThreadingActor):
    """Base of the runner's actors: records why it crashed."""

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Remember the reason (the supervisor reads it with `crash_reason`)."""
        reason = f"{exception_type.__name__}: {exception_value}"
        with _lock:
            _reasons[self.actor_urn] = reason
        logger.opt(exception=(exception_type, exception_value, traceback)).error(
            "{} crashed", type(self).__name__
        )


def crash_reason(ref: pykka.ActorRef) -> str | None:
    """Why the actor behind `ref` crashed, if it did (each reason is handed out once)."""
    with _lock:
        return _reasons.pop(ref.actor_urn, None)
