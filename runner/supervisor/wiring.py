"""The actors of one phase, connected through one `Router` (`runner.supervisor.routes`).

`Wiring.start_outputs` starts what every phase end needs (transcript, renderer, the embedder's
observer and events buffer); `start_session` the actors that watch the session (termination,
responder, sync, tracker), the tracker joining the stream last. Each start is behind a ping
barrier; `stop` leaves the stream and stops every actor in reverse order, each within a timeout
and with a logged outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pykka

from actors.checks import ArtifactBaseline, DoneCriteria
from actors.observer import ObserverActor
from actors.opencode_client import OpencodeClient
from actors.renderer import RendererActor
from actors.responder import ResponderActor
from actors.sync import SyncActor
from actors.termination import PromptOptions, TerminationActor
from actors.tracker import TrackerActor
from actors.transcript import TranscriptActor
from actors.worker import stop_actors, tell_quietly
from core.permissions import PermissionPolicy
from core.termination import Policy
from runner.supervisor.routes import (
    EVENTS,
    OBSERVER,
    RENDERER,
    RESPONDER,
    SUPERVISOR,
    SYNC,
    TERMINATION,
    TRACKER,
    TRANSCRIPT,
    Consumer,
    Router,
)

PING_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewOptions:
    """How the phase is shown."""

    mode: str = "plain"
    out: TextIO | None = None
    thinking: bool = False
    verbose: bool = False
    prefix: str | None = None
    board: Any = None  # `--parallel` on a terminal: the shared live table (actors.live)


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
    secrets: tuple[str, ...] = ()
    silent: float | None = None  # `timeouts.silent`: a busy session's stream with no part event

    def termination(self) -> dict[str, Any]:
        """The termination actor's arguments (besides where it publishes)."""
        return {
            "policy": self.policy,
            "client": self.client,
            "options": self.prompt,
            "criteria": self.criteria,
            "baseline": self.baseline,
            "directory": self.directory,
        }


class Wiring:
    """The actors of one phase around one router: started in dependency order behind a ping
    barrier, stopped in reverse, each stop bounded and logged."""

    def __init__(self, supervisor: Consumer) -> None:
        self.router = Router()
        self.router.connect(SUPERVISOR, supervisor)
        self._refs: list[pykka.ActorRef] = []
        self._unsubscribe: Callable[[], None] = lambda: None
        self.termination: pykka.ActorRef | None = None
        self.outputs_started = False

    def start_outputs(self, outputs: Outputs) -> None:
        """Transcript, renderer and the embedder's observer: what every phase end needs (tried
        once: a second transcript actor would truncate the first one's file)."""
        self.outputs_started = True
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
            board=view.board,
        )
        if outputs.on_event is not None:  # it stops itself after the verdict: not in `_refs`
            observer = ObserverActor.start(on_event=outputs.on_event)
            self.router.connect_actor(OBSERVER, observer)
        if outputs.events is not None:
            self.router.connect(EVENTS, outputs.events)
        self._barrier()

    def start_session(
        self,
        actors: SessionActors,
        subscribe: Callable[[Consumer], Any],
        reconnect: Callable[[str], None] | None = None,
    ) -> None:
        """The actors watching the session; the tracker joins the stream last (`reconnect`
        reopens that stream: the tracker asks when it went silent)."""
        publish, client, session_id = self.router.publish, actors.client, actors.session_id
        self.termination = self._start(
            TERMINATION, TerminationActor, **actors.termination(), publish=publish
        )
        self._start(
            RESPONDER, ResponderActor, client=client, policy=actors.permissions, publish=publish
        )
        self._start(
            SYNC,
            SyncActor,
            client=client,
            root_session_id=session_id,
            publish=publish,
            secrets=actors.secrets,
        )
        watch = {"silent": actors.silent, "reconnect": reconnect}  # a silent stream
        tracker = self._start(
            TRACKER, TrackerActor, root_session_id=session_id, publish=publish, **watch
        )
        self._barrier()
        self._unsubscribe = subscribe(lambda message: tell_quietly(tracker, message))

    def stop(self, timeout: float) -> None:
        """Leave the stream, then stop every actor in reverse order of starting."""
        self._unsubscribe()
        stop_actors(reversed(self._refs), timeout)

    def _start(self, name: str, cls: type[pykka.ThreadingActor], **kwargs: Any) -> pykka.ActorRef:
        ref = cls.start(report=self.router.publish, **kwargs)  # crash and stop reports
        self._refs.append(ref)
        return self.router.connect_actor(name, ref)

    def _barrier(self) -> None:
        """Every actor started so far answers: their `on_start`s have run."""
        for ref in self._refs:
            ref.proxy().actor_urn.get(timeout=PING_TIMEOUT)
