"""Where routing is decided: who receives which message, and how every hand-off is bounded.

`ROUTES` is the wiring diagram, read top to bottom: a message type and the consumers it goes
to. Producers never know their consumers: every actor is given `Router.publish`, which `tell`s
each consumer the table names (an actor, or a bounded queue); no consumer code ever runs on a
producer's thread. Adding a consumer is one line here.

The stream itself is wired one level up: the shared reader hands every batch and every piece of
stream news to its hub, which tells each phase's tracker (`runner/servers/streams.py`); the
tracker passes the news on in order with its batches, so within a phase it is the only producer
of the stream.

`INBOXES` says how each consumer's inbox is bounded. Only the stream's batches (`EventsReceived`,
`Tracked`: they carry a `size`) weigh anything; control messages and records always pass.
- drop: the producer must not block. The tracker is fed by the socket reader: a full inbox drops
  batches and the tracker resyncs what they carried (`EventsLost`). The embedder's `on_event`
  must not hold the stream back: its observer drops batches and counts them.
- block: the consumer must not lose data (transcript, renderer, termination, responder): a full
  inbox makes the tracker wait, which lets the tracker's own inbox fill and drop instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from actors.worker import tell_quietly
from messages.control import ActorCrashed, ActorStopped, Begin, Concluded, EndPhase
from messages.pipeline import RequestSync, SetBaseline, SnapshotFetched, Tracked
from messages.records import (
    AttemptStarted,
    Notice,
    PermissionAnswered,
    PhaseStarted,
    PromptSent,
    QuestionRejected,
    Resynced,
    StreamGap,
    VerdictReached,
)
from messages.server import ServerExited, ServerFailed
from messages.stream import EventsLost, EventsReceived, StreamConnected, StreamDropped, StreamFailed
from runner._logs import logger

TRACKER = "tracker"
SYNC = "sync"
RESPONDER = "responder"
TERMINATION = "termination"
TRANSCRIPT, RENDERER, OBSERVER, EVENTS, SUPERVISOR = (
    "transcript",
    "renderer",
    "observer",
    "events",
    "supervisor",
)
_SHOWN = (TRANSCRIPT, RENDERER, OBSERVER, EVENTS)  # what a person or an embedder sees

ROUTES: dict[type, tuple[str, ...]] = {
    # the stream, passed on by the tracker
    Tracked: (TERMINATION, RESPONDER, *_SHOWN),  # decisions first: a slow terminal waits last
    StreamConnected: (*_SHOWN, SUPERVISOR),  # the first one starts the phase
    StreamDropped: _SHOWN,
    StreamFailed: _SHOWN,  # the tracker resyncs one last time, then ends the phase
    StreamGap: (TRANSCRIPT, OBSERVER, EVENTS),  # the view needs none: its effects say gapped
    # resyncs
    RequestSync: (SYNC,),
    SetBaseline: (SYNC,),
    SnapshotFetched: (TRACKER,),
    Resynced: (*_SHOWN, SUPERVISOR),
    # records of the phase
    PhaseStarted: _SHOWN,
    AttemptStarted: _SHOWN,
    PromptSent: (*_SHOWN, TRACKER),  # the root works from now on: watched for silence
    PermissionAnswered: (*_SHOWN, TERMINATION),  # decided once, by the responder
    QuestionRejected: _SHOWN,
    Notice: _SHOWN,
    # the phase's course and end
    Begin: (TERMINATION,),
    EndPhase: (TERMINATION,),
    Concluded: (SUPERVISOR,),
    VerdictReached: _SHOWN,  # published by the supervisor, last
    ServerExited: (SUPERVISOR,),
    ServerFailed: (SUPERVISOR,),
    ActorCrashed: (SUPERVISOR,),
    ActorStopped: (SUPERVISOR,),
}

MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class Bound:
    """How many bytes of stream batches an inbox holds, and which types it drops when full."""

    capacity: int
    drop: tuple[type, ...] = ()
    lost_marker: Any = None


INBOXES: dict[str, Bound] = {
    TRACKER: Bound(4 * MiB, drop=(EventsReceived,), lost_marker=EventsLost()),
    TRANSCRIPT: Bound(2 * MiB),
    RENDERER: Bound(2 * MiB),
    TERMINATION: Bound(2 * MiB),
    RESPONDER: Bound(2 * MiB),
    OBSERVER: Bound(2 * MiB, drop=(Tracked,)),
    # SYNC and SUPERVISOR receive control messages only; EVENTS is a byte-bounded buffer.
}

Consumer = Callable[[Any], None]


class Router:
    """Hands each message to the consumers `ROUTES` names for its type (tells, never calls).

    `seal(last)` ends the phase's traffic: no producer waits on a full inbox from then on, the
    publishes in flight land, `last` goes out, and anything published later is dropped, so the
    verdict is the last thing every consumer receives."""

    def __init__(self, routes: dict[type, tuple[str, ...]] = ROUTES) -> None:
        self._routes = routes
        self._consumers: dict[str, Consumer] = {}
        self._inboxes: list[Any] = []
        self._table: dict[type, tuple[Consumer, ...]] = {}
        self._cond = threading.Condition()
        self._in_flight = 0
        self._sealed = False

    def connect(self, name: str, consumer: Consumer) -> None:
        """A consumer is ready to receive (before anything is published to it)."""
        self._consumers[name] = consumer
        self._table = {
            kind: tuple(self._consumers[n] for n in names if n in self._consumers)
            for kind, names in self._routes.items()
        }

    def connect_actor(self, name: str, ref: pykka.ActorRef) -> pykka.ActorRef:
        """Bound the actor's inbox as `INBOXES` says, then connect it."""
        bound = INBOXES.get(name)
        if bound is not None:
            ref.actor_inbox.limit(
                bound.capacity, droppable=bound.drop, lost_marker=bound.lost_marker
            )
        self._inboxes.append(ref.actor_inbox)
        self.connect(name, lambda message: tell_quietly(ref, message))
        return ref

    def publish(self, message: Any) -> None:
        """Tell every consumer of the message's type (nothing, once sealed)."""
        with self._cond:
            if self._sealed:
                logger.debug("sealed: dropped a late {}", type(message).__name__)
                return
            self._in_flight += 1
        try:
            self._deliver(message)
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def seal(self, last: Any, timeout: float) -> None:
        """Publish `last` as the final message of the phase (see the class docstring)."""
        for inbox in self._inboxes:
            inbox.close()
        with self._cond:
            self._sealed = True
            if not self._cond.wait_for(lambda: self._in_flight == 0, timeout):
                logger.warning(
                    "{} publish(es) still in flight after {:g}s", self._in_flight, timeout
                )
        self._deliver(last)

    def _deliver(self, message: Any) -> None:
        consumers = self._table.get(type(message))
        if consumers is None:
            logger.warning("no route for {}", type(message).__name__)
            return
        for consumer in consumers:
            consumer(message)
