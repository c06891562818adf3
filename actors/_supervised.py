"""SupervisedActor: the base of the runner's actors: a bounded inbox, and crash reports pushed.

pykka calls `on_failure` (not `on_stop`) when a handler raises, then the actor is dead and
its state unreachable. Each actor is given a `report` callable by the composition root and
pushes `ActorCrashed` (from `on_failure`) or `ActorStopped` (from `on_stop`) through it: the
supervisor never polls. Subclasses that override `on_stop` or `on_failure` call `super()`.
The inbox is an `Inbox`: unbounded until the composition root limits it (`actors._inbox`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pykka

from actors._inbox import Inbox
from actors.logs import logger
from messages.control import ActorCrashed, ActorStopped

Report = Callable[[Any], None]


def _ignore(message: Any) -> None:
    """Nobody supervises this actor (tests that start one alone)."""


class SupervisedActor(pykka.ThreadingActor):
    """Base of the runner's actors: reports its crash or stop to whoever supervises it."""

    actor_inbox: Inbox

    def __init__(self, *, report: Report | None = None) -> None:
        super().__init__()
        self._report = report or _ignore
        self.actor_inbox.bind(self.actor_stopped, type(self).__name__)

    @staticmethod
    def _create_actor_inbox() -> Inbox:
        return Inbox()

    def on_stop(self) -> None:
        """Producers stop waiting for this actor; the supervisor hears of the stop."""
        self.actor_inbox.close()
        self._report(ActorStopped(actor=type(self).__name__))

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Push the reason to the supervisor."""
        self.actor_inbox.close()
        reason = f"{exception_type.__name__}: {exception_value}"
        logger.opt(exception=(exception_type, exception_value, traceback)).error(
            "{} crashed", type(self).__name__
        )
        self._report(ActorCrashed(actor=type(self).__name__, reason=reason))
