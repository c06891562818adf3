"""The wiring of one phase: who receives which message, and how every hand-off is bounded.

`ROUTES` is the wiring diagram, read top to bottom: a message type and the consumers it goes
to. Producers never know their consumers: every actor is given `Router.publish`, which `tell`s
each consumer the table names (an actor, or a bounded queue); no consumer code ever runs on a
producer's thread. Adding a consumer is one line here.

The stream itself is wired one level up: the shared reader hands every batch and every piece of
stream news to its hub, which tells each phase's tracker (`runner/hub.py`); the tracker passes
the news on in order with its batches, so within a phase it is the only producer of the stream.

`INBOXES` says how each consumer's inbox is bounded. Only the stream's batches (`EventsReceived`,
`Tracked`: they carry a `size`) weigh anything; control messages and records always pass.
- drop: the producer must not block. The tracker is fed by the socket reader: a full inbox drops
  batches and the tracker resyncs what they carried (`EventsLost`). The embedder's `on_event`
  must not hold the stream back: its observer drops batches and counts them.
- block: the consumer must not lose data (transcript, renderer, termination, responder): a full
  inbox makes the tracker wait, which lets the tracker's own inbox fill and drop instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pykka
from loguru import logger

from actors._worker import stop_actors, tell_quietly
from actors.checks import ArtifactBaseline, DoneCriteria
from actors.observer import ObserverActor
from actors.opencode_client import OpencodeClient
from actors.renderer import RendererActor
from actors.responder import ResponderActor
from actors.sync import SyncActor
from actors.termination import PromptOptions, TerminationActor
from actors.tracker import TrackerActor
from actors.transcript import TranscriptActor
from core.permissions import PermissionPolicy
from core.termination import Policy
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
    VerdictReached,
)
from messages.server import ServerExited, ServerFailed
from messages.stream import EventsLost, EventsReceived, StreamConnected, StreamDropped, StreamFailed

TRACKER, SYNC, RESPONDER, TERMINATION = "tracker", "sync", "responder", "termination"
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
    Tracked: (*_SHOWN, TERMINATION, RESPONDER),
    StreamConnected: (*_SHOWN, SUPERVISOR),  # the first one starts the phase
    StreamDropped: _SHOWN,
    StreamFailed: _SHOWN,  # the tracker resyncs one last time, then ends the phase
    # resyncs
    RequestSync: (SYNC,),
    SetBaseline: (SYNC,),
    SnapshotFetched: (TRACKER,),
    Resynced: (*_SHOWN, SUPERVISOR),
    # records of the phase
    PhaseStarted: _SHOWN,
    AttemptStarted: _SHOWN,
    PromptSent: _SHOWN,
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
PING_TIMEOUT = 10.0


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
    """Hands each message to the consumers `ROUTES` names for its type (tells, never calls)."""

    def __init__(self, routes: dict[type, tuple[str, ...]] = ROUTES) -> None:
        self._routes = routes
        self._consumers: dict[str, Consumer] = {}
        self._table: dict[type, tuple[Consumer, ...]] = {}

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
        self.connect(name, lambda message: tell_quietly(ref, message))
        return ref

    def publish(self, message: Any) -> None:
        """Tell every consumer of the message's type."""
        consumers = self._table.get(type(message))
        if consumers is None:
            logger.warning("no route for {}", type(message).__name__)
            return
        for consumer in consumers:
            consumer(message)


# -- the actors of one phase --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewOptions:
    """How the phase is shown."""

    mode: str = "plain"
    out: TextIO | None = None
    thinking: bool = False
    verbose: bool = False
    prefix: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Outputs:
    """Where the phase is written and shown: transcript, terminal, embedder."""

    transcript: str
    header: dict[str, Any]
    view: ViewOptions
    on_event: Callable[[Any], None] | None = None
    events: Consumer | None = None
    redact: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionActors:
    """What the actors watching one session need."""

    client: OpencodeClient
    session_id: str
    permissions: PermissionPolicy
    policy: Policy
    prompt: PromptOptions
    criteria: DoneCriteria
    baseline: ArtifactBaseline
    directory: Path


class Wiring:
    """The actors of one phase around one router: started in dependency order behind a ping
    barrier, stopped in reverse, each stop bounded and logged."""

    def __init__(self, supervisor: Consumer) -> None:
        self.router = Router()
        self.router.connect(SUPERVISOR, supervisor)
        self._report = supervisor
        self._refs: list[pykka.ActorRef] = []
        self._unsubscribe: Callable[[], None] = lambda: None
        self.termination: pykka.ActorRef | None = None
        self.outputs_started = False

    def start_outputs(self, outputs: Outputs) -> None:
        """Transcript, renderer and the embedder's observer: what every phase end needs."""
        view = outputs.view
        self._start(
            TRANSCRIPT,
            TranscriptActor,
            path=outputs.transcript,
            header=outputs.header,
            redact=outputs.redact,
        )
        self._start(
            RENDERER,
            RendererActor,
            mode=view.mode,
            out=view.out,
            thinking=view.thinking,
            verbose=view.verbose,
            prefix=view.prefix,
            redact=outputs.redact,
        )
        if outputs.on_event is not None:  # it stops itself after the verdict: not in `_refs`
            observer = ObserverActor.start(on_event=outputs.on_event)
            self.router.connect_actor(OBSERVER, observer)
        if outputs.events is not None:
            self.router.connect(EVENTS, outputs.events)
        self._barrier()
        self.outputs_started = True

    def start_session(self, actors: SessionActors, subscribe: Callable[[Consumer], Any]) -> None:
        """The actors watching the session; the tracker joins the stream last."""
        publish = self.router.publish
        self.termination = self._start(
            TERMINATION,
            TerminationActor,
            policy=actors.policy,
            client=actors.client,
            options=actors.prompt,
            criteria=actors.criteria,
            baseline=actors.baseline,
            directory=actors.directory,
            sync=publish,
            publish=publish,
        )
        self._start(
            RESPONDER,
            ResponderActor,
            client=actors.client,
            policy=actors.permissions,
            publish=publish,
        )
        self._start(
            SYNC,
            SyncActor,
            client=actors.client,
            root_session_id=actors.session_id,
            publish=publish,
        )
        tracker = self._start(
            TRACKER, TrackerActor, root_session_id=actors.session_id, publish=publish
        )
        self._barrier()
        self._unsubscribe = subscribe(lambda message: tell_quietly(tracker, message))

    def stop(self, timeout: float) -> None:
        """Leave the stream, then stop every actor in reverse order of starting."""
        self._unsubscribe()
        stop_actors(reversed(self._refs), timeout)

    def _start(self, name: str, cls: type[pykka.ThreadingActor], **kwargs: Any) -> pykka.ActorRef:
        ref = cls.start(report=self._report, **kwargs)
        self._refs.append(ref)
        return self.router.connect_actor(name, ref)

    def _barrier(self) -> None:
        """Every actor started so far answers: their `on_start`s have run."""
        for ref in self._refs:
            ref.proxy().actor_urn.get(timeout=PING_TIMEOUT)
