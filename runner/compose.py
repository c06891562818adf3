"""Wiring of the event pipeline around one session: the composition root's building blocks.

`Pipeline.start(...)` starts, in dependency order and behind a ping barrier, the actors that
watch one session: transcript, renderer, permission responder, sync, tracker, and (shared or
own) SSE reader. `Pipeline.stop()` stops them in reverse order. `run_one_prompt` uses it to
send one prompt and wait for the session to go idle, which is all the event-pipeline tests
need before the termination policy exists.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import pykka
from loguru import logger

from actors._worker import tell_quietly
from actors.opencode_client import OpencodeClient
from actors.renderer import RendererActor
from actors.responder import ResponderActor
from actors.sse_reader import ReconnectPolicy, SseReaderActor
from actors.sync import SyncActor
from actors.tracker import TrackerActor
from actors.transcript import TranscriptActor, TranscriptWriter
from core.permissions import PermissionPolicy
from core.tracker import SessionIdle, StatusChanged
from messages.pipeline import Tracked
from messages.stream import StreamConnected
from runner.hub import StreamHub

# The question tool blocks a session until answered, and plan mode switches need a person:
# a headless run denies them when the session is created.
DENY_BLOCKING_TOOLS = tuple(
    {"permission": name, "action": "deny", "pattern": "*"}
    for name in ("question", "plan_enter", "plan_exit")
)
PING_TIMEOUT = 10.0


def fan_out(*consumers: Callable[[Any], None]) -> Callable[[Any], None]:
    """One callable that hands a message to each consumer (dead actors are skipped)."""

    def publish(message: Any) -> None:
        for consumer in consumers:
            with contextlib.suppress(pykka.ActorDeadError):
                consumer(message)

    return publish


def teller(ref: pykka.ActorRef) -> Callable[[Any], None]:
    """`ref.tell` that ignores an actor that has stopped."""
    return lambda message: tell_quietly(ref, message)


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewOptions:
    """How the phase is shown."""

    mode: str = "plain"
    out: TextIO | None = None
    thinking: bool = False
    verbose: bool = False
    prefix: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineSpec:
    """Everything the actors watching one session need."""

    client: OpencodeClient
    session_id: str
    policy: PermissionPolicy
    view: ViewOptions
    transcript: TranscriptWriter
    observe: Callable[[Any], None]
    hub: StreamHub
    extra_consumers: Sequence[Callable[[Any], None]] = ()
    redact: tuple[str, ...] = ()


def _nowhere(message: Any) -> None:
    """Default sink before the pipeline is wired."""


def _nothing() -> None:
    """Nothing to undo."""


def start_reader(
    client: OpencodeClient, hub: StreamHub, reconnect: ReconnectPolicy | None = None
) -> pykka.ActorRef:
    """One SSE reader for a server and directory, feeding a hub."""
    return SseReaderActor.start(
        client=client,
        subscribers=(hub.on_events,),
        publish=hub.on_news,
        policy=reconnect or ReconnectPolicy(),
    )


@dataclass
class Pipeline:
    """The actors watching one session; `observe` receives everything they publish."""

    session_id: str
    refs: list[pykka.ActorRef] = field(default_factory=list)
    renderer: pykka.ActorRef | None = None
    tracker: pykka.ActorRef | None = None
    sync: pykka.ActorRef | None = None
    publish: Callable[[Any], None] = _nowhere
    _unsubscribe: Callable[[], None] = _nothing

    @classmethod
    def start(cls, spec: PipelineSpec) -> Pipeline:
        """Start every actor in dependency order; the reader last, once all can receive."""
        pipe = cls(session_id=spec.session_id)
        try:
            pipe._start_all(spec)
        except BaseException:
            pipe.stop()
            raise
        return pipe

    def _start_all(self, spec: PipelineSpec) -> None:
        view = spec.view
        transcript_ref = self._add(TranscriptActor.start(writer=spec.transcript))
        self.renderer = self._add(
            RendererActor.start(
                mode=view.mode,
                out=view.out,
                thinking=view.thinking,
                verbose=view.verbose,
                prefix=view.prefix,
                redact=spec.redact,
            )
        )
        self.publish = fan_out(
            teller(transcript_ref), teller(self.renderer), spec.observe, *spec.extra_consumers
        )
        responder = self._add(
            ResponderActor.start(client=spec.client, policy=spec.policy, publish=self.publish)
        )
        self.sync = self._add(
            SyncActor.start(
                client=spec.client, root_session_id=self.session_id, reply_to=self._to_tracker
            )
        )
        self.tracker = self._add(
            TrackerActor.start(
                root_session_id=self.session_id,
                downstream=(self.publish, teller(responder)),
                request_sync=teller(self.sync),
            )
        )
        self._barrier()
        self._unsubscribe = spec.hub.subscribe(
            events=teller(self.tracker), news=fan_out(self.publish, self._stream_to_tracker)
        )

    def _to_tracker(self, message: Any) -> None:
        if self.tracker is not None:
            tell_quietly(self.tracker, message)

    def _stream_to_tracker(self, message: Any) -> None:
        if isinstance(message, StreamConnected):
            self._to_tracker(message)

    def _add(self, ref: pykka.ActorRef) -> pykka.ActorRef:
        self.refs.append(ref)
        return ref

    def _barrier(self) -> None:
        """Every actor started so far answers: their `on_start`s have run."""
        for ref in self.refs:
            ref.proxy().actor_urn.get(timeout=PING_TIMEOUT)

    def stop(self) -> None:
        """Stop the actors in reverse order of starting; never raises."""
        self._unsubscribe()
        self._unsubscribe = _nothing
        if self.renderer is not None:
            with contextlib.suppress(Exception):
                self.renderer.proxy().flush().get(timeout=5)
        for ref in reversed(self.refs):
            with contextlib.suppress(Exception):
                ref.stop(timeout=10)
        self.refs.clear()


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptOutcome:
    """What `run_one_prompt` saw: every message published, in order."""

    session_id: str
    messages: tuple[Any, ...]
    idle: bool
    reason: str
    snapshot: tuple[dict[str, Any], ...] = ()

    def effects(self) -> list[Any]:
        """All tracked effects in order."""
        return [e for m in self.messages if isinstance(m, Tracked) for e in m.effects]


def wait_for_idle(
    observed: queue.Queue, session_id: str, *, timeout: float, stop_on: tuple[type, ...] = ()
) -> tuple[list[Any], bool, str]:
    """Collect published messages until the root goes idle after having been busy."""
    seen: list[Any] = []
    busy = False
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            message = observed.get(timeout=remaining)
        except queue.Empty:
            break
        seen.append(message)
        if isinstance(message, stop_on):
            return seen, False, type(message).__name__
        for effect in message.effects if isinstance(message, Tracked) else ():
            if isinstance(effect, StatusChanged) and effect.session_id == session_id:
                busy = busy or effect.status.get("type") in ("busy", "retry")
            if isinstance(effect, SessionIdle) and effect.session_id == session_id and busy:
                return seen, True, "idle"
    logger.debug("no idle within {}s", timeout)
    return seen, False, "timeout"
