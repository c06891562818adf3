"""The phase supervisor: wires the actors for one phase, watches them, returns the verdict.

Theory of operation. `Supervisor.run()` runs on its own thread (the caller's, or a handle's).
It starts the server (or borrows a shared one), creates the session, starts the pipeline and
the termination actor in dependency order behind a ping barrier, and then only reads its inbox:
the first `StreamConnected` tells the termination actor to begin; a dead server, a lost stream
or a cancel becomes `EndPhase`; a stopped actor becomes verdict `failed`; `VerdictReached`
ends the loop. Whatever happened, the `finally` stops everything in reverse order, writes the
verdict record and the result JSON, and leaves no process behind.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import pykka
from loguru import logger

from actors._supervised import crash_reason
from actors.checks import DoneCriteria, take_baseline
from actors.opencode_client import OpencodeClient
from actors.termination import Begin, EndPhase, PromptOptions, TerminationActor
from actors.transcript import TranscriptWriter
from core.errors import RunnerError
from core.permissions import PermissionPolicy
from core.termination import EXIT_CODES, Limits, Policy
from messages.records import Notice, PhaseStarted, Resynced, VerdictReached
from messages.server import ServerExited, ServerReady
from messages.stream import StreamConnected, StreamDropped, StreamFailed
from runner._outputs import write_outputs
from runner.compose import (
    DENY_BLOCKING_TOOLS,
    Pipeline,
    PipelineSpec,
    ViewOptions,
    fan_out,
    teller,
)
from runner.phase import PhaseSpec
from runner.result import PhaseResult, totals_of
from runner.shared_server import SharedServer, StartFailedError, server_spec

POLL = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """How a phase runs besides its file: output, environment, observers."""

    mode: str = "plain"
    out: TextIO | None = None
    verbose: bool = False
    prefix: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    on_event: Callable[[Any], None] | None = None


@dataclass
class _Stats:
    reconnects: int = 0
    resyncs: int = 0
    connected: bool = False
    log_tail: tuple[str, ...] = ()


class Supervisor:
    """Runs one phase to its verdict (see the module docstring)."""

    def __init__(
        self, spec: PhaseSpec, options: RunOptions, *, server: SharedServer | None = None
    ) -> None:
        self.spec = spec
        self.options = options
        self._own_server = server is None
        self._server = server or SharedServer(server_spec(spec, options.env))
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._cancel = threading.Event()
        self._cancel_reason = "interrupted"
        self._refs: list[pykka.ActorRef] = []
        self._pipe: Pipeline | None = None
        self._writer: TranscriptWriter | None = None
        self._stats = _Stats()
        self._secrets: tuple[str, ...] = ()

    def cancel(self, reason: str = "interrupted") -> None:
        """Ask the phase to end: the session is aborted, verdict `interrupted`."""
        self._cancel_reason = reason
        self._cancel.set()
        self._inbox.put(None)  # wake the loop

    def run(self) -> PhaseResult:
        """Run the phase; never raises for the phase's own failures."""
        started, wall = time.monotonic(), time.time()
        session_id = version = url = None
        verdict = VerdictReached(verdict="failed", reason="the phase did not finish", exit_code=1)
        try:
            ready = self._server.ready()
            version, url = ready.version, ready.url
            self._server.watch(self._inbox.put)
            client = OpencodeClient(
                ready.url, password=ready.password, directory=str(self.spec.directory)
            )
            session_id = self._create_session(client)
            verdict = self._drive(client, ready, session_id)
            if verdict.exit_code != 0:
                _abort_quietly(client, session_id)
        except StartFailedError as exc:
            self._stats.log_tail = exc.log_tail
            verdict = _failed(str(exc))
        except RunnerError as exc:
            verdict = _failed(str(exc))
        except Exception as exc:
            logger.exception("supervisor failed")
            verdict = _failed(f"internal error: {exc}")
        finally:
            self._shutdown()
        return self._finish(verdict, session_id, (version, url), started, wall)

    # -- the phase -------------------------------------------------------------------------------

    def _create_session(self, client: OpencodeClient) -> str:
        info = client.create_session(
            title=self.spec.label,
            agent=self.spec.agent,
            model=self.spec.model,
            permission=list(DENY_BLOCKING_TOOLS),
        )
        return str(info["id"])

    def _drive(self, client: OpencodeClient, ready: ServerReady, session_id: str) -> VerdictReached:
        spec = self.spec
        self._secrets = (ready.password,) if ready.password else ()
        self._writer = TranscriptWriter(
            str(spec.output.transcript),
            {
                "phase": spec.name,
                "session_id": session_id,
                "opencode_version": ready.version,
                "label": spec.label,
                "directory": str(spec.directory),
            },
            redact=self._secrets,
        )
        relay = _Relay()
        termination = self._start_termination(client, session_id, relay)
        observers = [self._inbox.put, teller(termination)]
        if self.options.on_event is not None:
            observers.append(self.options.on_event)
        self._pipe = Pipeline.start(
            PipelineSpec(
                client=client,
                session_id=session_id,
                policy=_policy(spec),
                view=ViewOptions(
                    mode=self.options.mode,
                    out=self.options.out,
                    thinking=spec.thinking,
                    verbose=self.options.verbose,
                    prefix=self.options.prefix,
                ),
                transcript=self._writer,
                observe=fan_out(*observers),
                hub=self._server.hub(client),
                redact=self._secrets,
            )
        )
        relay.target = self._pipe.publish
        relay.sync = teller(self._pipe.sync)
        self._pipe.publish(self._banner(ready, session_id))
        return self._loop(termination)

    def _banner(self, ready: ServerReady, session_id: str) -> PhaseStarted:
        spec = self.spec
        return PhaseStarted(
            phase=spec.name,
            label=spec.label,
            session_id=session_id,
            directory=str(spec.directory),
            agent=spec.agent,
            model=spec.model,
            server_version=ready.version,
            server_url=ready.url,
            transcript_path=str(spec.output.transcript),
        )

    def _start_termination(self, client, session_id, relay) -> pykka.ActorRef:
        spec = self.spec
        criteria = DoneCriteria.from_checks(spec.done)
        limits = Limits(
            resumes=spec.budgets.resumes,
            repairs=spec.budgets.repairs,
            provider_retries=spec.budgets.provider_retries,
            phase_timeout=spec.timeouts.phase,
            stall_timeout=spec.timeouts.stall,
        )
        ref = TerminationActor.start(
            policy=Policy(
                limits,
                prompt=spec.prompt,
                session_id=session_id,
                now=time.monotonic(),
                permissions=_policy(spec),
            ),
            client=client,
            options=PromptOptions(model=spec.model, agent=spec.agent, variant=spec.variant),
            criteria=criteria,
            baseline=take_baseline(spec.directory, criteria),
            directory=spec.directory,
            sync=relay.to_sync,
            publish=self._from_termination(relay),
        )
        self._refs.append(ref)
        return ref

    def _from_termination(self, relay: _Relay) -> Callable[[Any], None]:
        """The verdict comes to the supervisor alone; the other records go down the pipeline."""

        def publish(message: Any) -> None:
            if isinstance(message, VerdictReached):
                self._inbox.put(message)
            else:
                relay(message)

        return publish

    def _loop(self, termination: pykka.ActorRef) -> VerdictReached:
        deadline = time.monotonic() + self.spec.timeouts.phase + 60
        cancelled = False
        while time.monotonic() < deadline:
            if self._cancel.is_set() and not cancelled:
                cancelled = True
                termination.tell(EndPhase(verdict="interrupted", reason=self._cancel_reason))
            try:
                message = self._inbox.get(timeout=POLL)
            except queue.Empty:
                message = None
            if isinstance(message, VerdictReached):
                return message
            self._note(message, termination)
            crashed = self._crashed()
            if crashed:
                return _failed(crashed, _summary_of(termination))
        return _failed("the supervisor gave up waiting for a verdict", _summary_of(termination))

    def _note(self, message: Any, termination: pykka.ActorRef) -> None:
        match message:
            case StreamConnected():
                if not self._stats.connected:
                    self._stats.connected = True
                    termination.tell(Begin())
                else:
                    self._stats.reconnects += 1
            case Resynced():
                self._stats.resyncs += 1
            case ServerExited(reason=reason, log_tail=tail):
                self._stats.log_tail = tail
                if self._pipe is not None:
                    self._pipe.publish(Notice(level="error", text=_with_tail(reason, tail)))
                termination.tell(EndPhase(verdict="failed", reason=reason))
            case StreamFailed(reason=reason):
                termination.tell(EndPhase(verdict="failed", reason=f"event stream lost: {reason}"))
            case StreamDropped():
                pass

    def _crashed(self) -> str | None:
        """Why an actor of the phase is gone, if one is."""
        for ref in [*self._refs, *(self._pipe.refs if self._pipe else [])]:
            if not ref.is_alive():
                name = ref.actor_class.__name__
                reason = crash_reason(ref)
                if reason is None:
                    return f"the {name} stopped unexpectedly"
                return f"the {name} crashed: {reason}"
        return None

    # -- the end ---------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        for ref in reversed(self._refs):
            with contextlib.suppress(Exception):
                ref.stop(timeout=10)
        if self._pipe is not None:
            self._pipe.stop()
        if self._own_server:
            self._server.stop()

    def _finish(self, verdict, session_id, server, started, wall) -> PhaseResult:
        spec = self.spec
        version, url = server
        attempts = tuple(verdict.summary.get("attempts", ()))
        result = PhaseResult(
            phase=spec.name,
            verdict=verdict.verdict,
            reason=verdict.reason,
            exit_code=EXIT_CODES.get(verdict.verdict, verdict.exit_code),
            session_id=session_id,
            attempts=attempts,
            rejected_permissions=tuple(verdict.summary.get("rejected_permissions", ())),
            reconnects=self._stats.reconnects,
            resyncs=self._stats.resyncs,
            started_at=wall,
            duration=round(time.monotonic() - started, 3),
            server_version=version,
            server_url=url,
            transcript=str(spec.output.transcript),
            result_path=str(spec.output.result),
            server_log=None if spec.server.attach else self._server.spec.log_path,
            server_log_tail=self._stats.log_tail,
            totals=totals_of(attempts),
        )
        write_outputs(
            result,
            transcript=self._writer
            or TranscriptWriter(
                str(spec.output.transcript), {"phase": spec.name, "session_id": None}
            ),
            options=self.options,
        )
        return result


class _Relay:
    """Late-bound publish: the termination actor exists before the pipeline it publishes to."""

    def __init__(self) -> None:
        self.target: Callable[[Any], None] | None = None
        self.sync: Callable[[Any], None] | None = None

    def __call__(self, message: Any) -> None:
        if self.target is not None:
            self.target(message)

    def to_sync(self, message: Any) -> None:
        if self.sync is not None:
            self.sync(message)


def _policy(spec: PhaseSpec) -> PermissionPolicy:
    permissions = spec.permissions
    return PermissionPolicy(
        default=permissions.default,
        allow=frozenset(permissions.allow),
        deny=frozenset(permissions.deny),
        feedback=permissions.feedback,
    )


def _failed(reason: str, summary: dict[str, Any] | None = None) -> VerdictReached:
    return VerdictReached(verdict="failed", reason=reason, exit_code=1, summary=summary or {})


def _abort_quietly(client: OpencodeClient, session_id: str) -> None:
    """A phase that ended badly leaves nothing running in the session, whoever owns the server
    (attached, or shared with phases that go on)."""
    try:
        client.abort(session_id)
    except RunnerError as exc:
        logger.debug("could not abort session {}: {}", session_id, exc)


def _summary_of(termination: pykka.ActorRef) -> dict[str, Any]:
    """The termination actor's attempts so far, if it can still answer."""
    try:
        return termination.proxy().summary().get(timeout=2)
    except Exception:
        return {}


def _with_tail(reason: str, tail: tuple[str, ...]) -> str:
    return reason + ("\nlast server log lines:\n" + "\n".join(tail[-10:]) if tail else "")
