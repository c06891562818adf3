"""The phase supervisor: starts a phase step by step, watches it, decides its end.

Theory of operation. `Supervisor.run()` runs on its own thread (the caller's, or a handle's).
Start-up is a row of steps (server, outputs, session, artifact baseline, actors, stream); a
cancel is honoured between any two and while the server starts. The wiring lives in
`wiring` and `routes` beside it. The watch loop only reads the supervisor's inbox (a
bounded queue the router feeds) and applies what `watch` decides: the first
`StreamConnected` begins the termination policy, a server death or a cancel becomes
`EndPhase`, a crashed or stopped actor ends the phase `failed`, and the termination actor's
`Concluded` ends it as concluded. The end is the same however the phase went: the result JSON
first (nothing that can block comes before it), then the verdict to the transcript, the
terminal and the embedder (the router is sealed: nothing comes after it), then the session
aborted if the phase failed, then every actor stopped within a timeout, then the server:
quickly, when interrupted.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from actors.checks import DoneCriteria, take_baseline
from actors.opencode_client import OpencodeClient
from actors.process import read_log_tail
from actors.sse_reader import ReconnectPolicy
from core.errors import RefusedError, RunnerError, UpstreamHTTPError
from core.opencode_versions import Capabilities
from core.protocol import wire_for
from core.redact import secrets_of
from core.server_rules import migration_failure
from messages.control import Concluded
from messages.records import VerdictReached
from messages.server import ServerReady
from runner._logs import logger
from runner.phase import PhaseSpec
from runner.phase.derive import banner, permission_policy, prompt_options, termination_policy
from runner.servers.keys import server_spec
from runner.servers.shared import (
    SharedServer,
    StartCancelledError,
    StartFailedError,
    StreamKey,
    stream_key,
)
from runner.supervisor.result import PhaseResult, RunFacts, write_result
from runner.supervisor.session import create_session
from runner.supervisor.watch import Step, Watch, concluded
from runner.supervisor.wiring import Outputs, SessionActors, ViewOptions, Wiring

INBOX_SIZE = 10_000  # control messages only: a full inbox means the supervisor is gone
POLL = 0.25
STOP_TIMEOUT = 5.0
# A cancelled phase has its verdict (`interrupted`) this soon, even if the policy is stuck.
VERDICT_AFTER_CANCEL = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """How a phase runs besides its file: output, environment, observers."""

    mode: str = "plain"
    out: TextIO | None = None
    verbose: bool = False
    prefix: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    on_event: Callable[[Any], None] | None = None
    events: Callable[[Any], None] | None = None  # a bounded buffer's `put`
    board: Any = None  # `--parallel` on a terminal: the live table of the phases


class Supervisor:
    """Runs one phase to its verdict (see the module docstring)."""

    def __init__(
        self, spec: PhaseSpec, options: RunOptions, *, server: SharedServer | None = None
    ) -> None:
        self.spec = spec
        self.options = options
        self._own_server = server is None
        self._server = server or SharedServer(server_spec(spec, options.env))
        self._inbox: queue.Queue[Any] = queue.Queue(maxsize=INBOX_SIZE)
        self._cancel = threading.Event()
        self._cancel_reason = "interrupted"
        self._stream_key: StreamKey | None = None
        self._secrets: tuple[str, ...] = ()  # what every output masks (core.redact.secrets_of)
        self._facts = RunFacts(
            phase=spec.name,
            transcript=str(spec.output.transcript),
            result_path=str(spec.output.result),
            server_log=None if spec.server.attach else self._server.spec.log_path,
        )

    def cancel(self, reason: str = "interrupted", exit_code: int = 130) -> None:
        """Ask the phase to end: the session is aborted, verdict `interrupted` (`exit_code`: 130
        for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP)."""
        if not self._cancel.is_set():  # the first reason and signal are the phase's
            self._cancel_reason = reason
            self._facts.interrupted_exit = exit_code
        self._cancel.set()
        self._put(None)  # wake the watch loop

    def run(self) -> PhaseResult:
        """Run the phase; never raises for the phase's own failures."""
        started, self._facts.started_at = time.monotonic(), time.time()
        self._t0 = started
        wiring = Wiring(self._put)
        unwatch: Callable[[], None] = _nothing
        try:
            ready = self._server.ready(self._cancel)
            unwatch = self._server.watch(wiring.router.publish)  # a server death
            end = self._phase(wiring, ready)
        except StartCancelledError:
            end = concluded("interrupted", self._cancel_reason)
        except StartFailedError as exc:
            self._facts.server_log_tail = exc.log_tail
            end = concluded("failed", str(exc))
        except RefusedError as exc:
            self._facts.refused_exit = exc.exit_code
            end = concluded("failed", str(exc))
        except RunnerError as exc:
            end = concluded("failed", self._cause(exc))
        except Exception as exc:
            logger.exception("supervisor failed")
            end = concluded("failed", f"internal error: {exc}")
        finally:
            unwatch()
        self._facts.duration = time.monotonic() - started
        return self._end(wiring, end)

    # -- start-up --------------------------------------------------------------------------------

    def _phase(self, wiring: Wiring, ready: ServerReady) -> Concluded:
        spec, facts = self.spec, self._facts
        facts.server_version = ready.version
        facts.server_url = ready.url
        facts.server_pid = ready.pid  # None when attached, unless leased from the pool
        facts.server_origin = ready.origin
        facts.server_log = ready.log_path or facts.server_log  # a lent server's is the daemon's
        facts.server_capabilities = ready.capabilities.as_dict()
        self._mark(f"opencode {ready.version} ready")
        environ = {**os.environ, **(self.options.env or {})}
        self._secrets = secrets_of(ready.password, environ, spec.secrets)
        wiring.start_outputs(self._outputs())
        caps = ready.capabilities
        client = OpencodeClient(
            ready.url, password=ready.password, directory=str(spec.directory), wire=wire_for(caps)
        )
        self._check_cancel()
        policy = ReconnectPolicy(outage=spec.timeouts.outage, heartbeat=caps.heartbeat)
        # The stream connects while the session is created: the prompt waits for neither.
        hub = self._server.hub(client, policy, self._secrets)
        self._stream_key = stream_key(client, policy, self._secrets)  # released at the end
        facts.session_id = session_id = self._create_session(client, caps)
        self._mark(f"session {session_id} created")
        self._check_cancel()
        criteria = DoneCriteria.from_checks(spec.done, schema=spec.output_schema)
        actors = SessionActors(
            client=client,
            session_id=session_id,
            permissions=permission_policy(spec),
            policy=termination_policy(spec, session_id, time.monotonic()),
            prompt=prompt_options(spec),
            criteria=criteria,
            baseline=take_baseline(spec.directory, criteria),
            directory=spec.directory,
            secrets=self._secrets,
            silent=spec.timeouts.silent,
        )
        self._check_cancel()
        # the transcript's header
        wiring.router.publish(banner(spec, ready, session_id, facts.permission_rules))
        wiring.start_session(actors, hub.subscribe, hub.reconnect)
        self._mark("watching the session")
        return self._watch(wiring)

    def _mark(self, step: str) -> None:
        """A debug line per start-up step, with the time since the phase started."""
        logger.debug("{}: {} after {:.3f}s", self.spec.name, step, time.monotonic() - self._t0)

    def _outputs(self) -> Outputs:
        spec, options = self.spec, self.options
        return Outputs(
            transcript=str(spec.output.transcript),
            header={"phase": spec.name, "label": spec.label, "directory": str(spec.directory)},
            view=ViewOptions(
                mode=options.mode,
                out=options.out,
                thinking=spec.thinking,
                verbose=options.verbose,
                prefix=options.prefix,
                board=options.board,
            ),
            on_event=options.on_event,
            events=options.events,
            redact=self._secrets,
        )

    def _create_session(self, client: OpencodeClient, caps: Capabilities) -> str:
        session_id, rules = create_session(
            client,
            title=self.spec.label,
            agent=self.spec.agent,
            model=self.spec.model,
            policy=permission_policy(self.spec),
            capabilities=caps,
        )
        self._facts.permission_rules = tuple(rule.as_dict() for rule in rules)
        return session_id

    def _cause(self, exc: RunnerError) -> str:
        """What went wrong: the server's own cause when its log names one, else the error."""
        log = self._facts.server_log
        if isinstance(exc, UpstreamHTTPError) and exc.status == 500 and log:
            env = self._server.spec.env
            data = (
                self._server.spec.data_dir
                or env.get("XDG_DATA_HOME")
                or os.environ.get("XDG_DATA_HOME", os.path.expanduser("~/.local/share"))
            )
            return migration_failure(read_log_tail(log, count=200), data) or str(exc)
        return str(exc)

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise StartCancelledError("cancelled during start-up")

    # -- the watch loop --------------------------------------------------------------------------

    def _watch(self, wiring: Wiring) -> Concluded:
        watch, publish = Watch(), wiring.router.publish
        deadline = time.monotonic() + self.spec.timeouts.phase + 60
        step = Step()
        while step.end is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                step = watch.expired()
            elif self._cancel.is_set() and not watch.cancelled:
                step = watch.cancel(self._cancel_reason)
                deadline = min(deadline, time.monotonic() + VERDICT_AFTER_CANCEL)
            else:
                with contextlib.suppress(queue.Empty):
                    step = watch.on(self._inbox.get(timeout=min(POLL, remaining)))
            for message in step.publish:
                publish(message)
        facts = self._facts
        facts.reconnects, facts.resyncs = watch.reconnects, watch.resyncs
        facts.server_log_tail = watch.log_tail or facts.server_log_tail
        if step.end.verdict == "failed" and not step.end.summary:
            return concluded("failed", step.end.reason, self._summary(wiring))
        return step.end

    def _summary(self, wiring: Wiring) -> dict[str, Any]:
        """The attempts so far, if the termination actor can still say."""
        if wiring.termination is not None:
            with contextlib.suppress(Exception):
                return wiring.termination.proxy().summary().get(timeout=2)
        return {}

    def _put(self, message: Any) -> None:
        try:
            self._inbox.put_nowait(message)
        except queue.Full:
            logger.error("supervisor inbox full: dropped {}", type(message).__name__)

    # -- the end ---------------------------------------------------------------------------------

    def _end(self, wiring: Wiring, end: Concluded) -> PhaseResult:
        result = PhaseResult.from_verdict(end, self._facts)
        try:
            write_result(result)
        except OSError as exc:
            logger.error("could not write the result {}: {}", result.result_path, exc)
        if not wiring.outputs_started:
            with contextlib.suppress(Exception):
                wiring.start_outputs(self._outputs())
        verdict = VerdictReached(
            verdict=result.verdict,
            reason=result.reason,
            exit_code=result.exit_code,
            summary=result.to_dict(),
        )
        wiring.router.seal(verdict, STOP_TIMEOUT)
        interrupted = result.verdict == "interrupted"
        if result.exit_code != 0 and not interrupted:
            self._abort_session()
        wiring.stop(STOP_TIMEOUT)
        if self._stream_key is not None:
            self._server.release(self._stream_key)
        if self._own_server:
            self._server.stop(quick=interrupted, settled=result.exit_code == 0)
        return result

    def _abort_session(self) -> None:
        """A phase that ended badly leaves nothing running in its session, whoever owns the
        server (attached, or shared with phases that go on)."""
        if self._facts.session_id is not None:
            self._server.abort_session(self._facts.session_id)


def _nothing() -> None:
    """Nothing to undo."""
