"""ServerActor: owns the opencode server process (or an attachment to a running one).

Theory of operation. `on_start` spawns `opencode serve` in its own process group with a fresh
random password (or adopts one the CLI started early, `Prespawned`, with its password), then
three daemon threads only `tell` the actor what they see: the stdout
pump (`_Listening` when the listening line appears; nothing is sent to the port before it),
the health probe (`_Healthy` or `_Unhealthy`, polling with short timeouts until the start
deadline), and the waiter (`_Exited` the moment the process ends). The actor publishes
`ServerReady` once healthy and the version is supported, `ServerFailed` if start fails (and
kills what it started), `ServerExited` if the process dies afterwards, and `ServerStopped` on
stop. Stopping aborts busy sessions over HTTP first (SIGTERM gives opencode no drain; skipped
when the caller knows every session is idle), then SIGTERMs the group, waits, and SIGKILLs
whatever remains. In attach mode it only probes, and watches a leased server's process
(`ServerSpec.attach_pid`: the pool daemon's) to report its death as `ServerExited`.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from actors import _server_http, process
from actors.logs import logger
from actors.process import ServerSpec
from core.errors import ServerStartError
from core.server_rules import check_version, is_transient_start_failure, parse_listening_line
from messages.server import ServerExited, ServerFailed, ServerReady, ServerStopped


@dataclass(frozen=True, slots=True)
class _Listening:
    url: str


@dataclass(frozen=True, slots=True)
class _Healthy:
    version: str


@dataclass(frozen=True, slots=True)
class _Unhealthy:
    reason: str


@dataclass(frozen=True, slots=True)
class _Exited:
    code: int | None
    pid: int


@dataclass(frozen=True, slots=True)
class _LeaseGone:
    pid: int


# opencode servers sharing a fresh data folder race to create its database ("database is
# locked" or a failed migration query, exit 1): a start that fails that way is tried again.
MAX_RESPAWNS = 2
HURRIED_GRACE = 0.5


class ServerActor(pykka.ThreadingActor):
    """Starts, watches and stops one opencode server; reports everything as messages."""

    def __init__(
        self,
        *,
        spec: ServerSpec,
        publish: Callable[[Any], None],
        clock: Callable[[], float] = time.monotonic,
        prespawned: process.Prespawned | None = None,
    ) -> None:
        super().__init__()
        self._spec = spec
        self._publish = publish
        self._clock = clock
        self._binary = process.resolve_binary(spec.binary)
        self._password = spec.attach_password if spec.attach_url else process.new_password()
        self._proc = None
        self._log = None
        self._url: str | None = spec.attach_url
        self._ready = False
        self._done = False  # failed or stopping: later process news is expected, not news
        self._quit = threading.Event()
        self._timer: threading.Timer | None = None
        self._respawns = 0
        self._grace = spec.stop_grace  # see prepare_stop
        self._abort_on_stop = True
        self._prespawned = prespawned
        if prespawned is not None:
            self._password = prespawned.password

    def on_start(self) -> None:
        """Spawn the server (or probe the attached one); failures become `ServerFailed`."""
        self._deadline = self._clock() + self._spec.start_timeout
        if self._spec.attach_url:
            self._probe_in_thread(self._spec.attach_url)
            return
        if self._prespawned is not None:
            self._log = self._prespawned.log
            self._adopt(self._prespawned.proc)
        else:
            try:
                self._log = process.open_log(self._spec.log_path)
            except OSError as exc:
                self._fail(f"cannot write the server log {self._spec.log_path}: {exc.strerror}")
                return
            if not self._spawn():
                return
        self._timer = threading.Timer(
            self._spec.start_timeout, self._tell, (_Unhealthy("timeout"),)
        )
        self._timer.daemon = True
        self._timer.start()

    def _spawn(self) -> bool:
        try:
            proc = process.spawn(self._binary, self._spec, self._password, self._log)
        except (ServerStartError, OSError) as exc:
            self._fail(str(exc))
            return False
        self._adopt(proc)
        return True

    def _adopt(self, proc: subprocess.Popen[str]) -> None:
        """Watch a started process: its stdout (the listening line) and its exit."""
        self._proc = proc
        logger.debug("opencode pid {} started, log {}", proc.pid, self._spec.log_path)
        process.start_thread("opencode-stdout", lambda: self._pump_stdout(proc))
        process.start_thread("opencode-waiter", lambda: self._tell(_Exited(proc.wait(), proc.pid)))

    def on_receive(self, message: Any) -> None:
        """Handle the threads' reports."""
        match message:
            case _Listening(url=url) if not self._done:
                self._url = url
                self._probe_in_thread(url)
            case _Healthy(version=version) if not self._done and not self._ready:
                self._become_ready(version)
            case _Unhealthy(reason=reason) if not self._done and not self._ready:
                if reason == "timeout":
                    reason = f"opencode did not become healthy within {self._spec.start_timeout:g}s"
                self._fail(reason)
            case _Exited(code=code, pid=pid) if self._proc is not None and pid == self._proc.pid:
                self._on_exit(code)
            case _Exited():
                pass  # an earlier start attempt's process
            case _LeaseGone(pid=pid) if not self._done:
                self._done = True
                reason = f"the leased opencode server (pid {pid}) died"
                tail = process.read_log_tail(self._spec.log_path)
                self._publish(ServerExited(exit_code=None, reason=reason, log_tail=tail))
            case _LeaseGone():
                pass
            case _Listening() | _Healthy() | _Unhealthy():
                pass  # late news after failure, stop or readiness
            case _:
                logger.warning("ServerActor ignored unexpected message {!r}", message)

    def prepare_stop(self, *, quick: bool, sweep: bool) -> None:
        """How the next stop goes. `quick` (an interrupt's): no abort sweep, half a second of
        grace (opencode ignores SIGTERM while it installs its configuration's dependencies).
        `sweep=False`: every session is known to be idle, so no sweep either."""
        if quick:
            self._grace = min(self._grace, HURRIED_GRACE)
        self._abort_on_stop = sweep and not quick

    def on_stop(self) -> None:
        """Abort busy sessions, stop the process group, report `ServerStopped`."""
        self._done = True
        self._quit.set()
        code = self._shutdown()
        self._publish(ServerStopped(exit_code=code, attached=bool(self._spec.attach_url)))

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Never leave a process behind, even when a handler crashed."""
        self._done = True
        self._quit.set()
        self._shutdown()
        self._publish(ServerFailed(reason=f"server actor crashed: {exception_value}"))

    # -- transitions ---------------------------------------------------------------------------

    def _become_ready(self, version: str) -> None:
        try:
            version = check_version(version, binary=self._binary)
        except ServerStartError as exc:
            self._fail(str(exc))
            return
        self._ready = True
        leased = self._spec.attach_pid
        pid = self._proc.pid if self._proc else leased
        self._publish(
            ServerReady(
                url=self._url or "",
                version=version,
                password=self._password,
                pid=pid,
                log_path=None if self._spec.attach_url and not leased else self._spec.log_path,
                attached=bool(self._spec.attach_url),
                origin=self._spec.origin,
            )
        )
        if leased is not None:  # not our child: its end is seen through a pidfd
            process.start_thread("opencode-lease-watch", lambda: self._watch_lease(leased))

    def _fail(self, reason: str) -> None:
        self._done = True
        self._quit.set()
        self._shutdown()
        self._publish(ServerFailed(reason=reason, log_tail=self._log_tail()))

    def _on_exit(self, code: int | None) -> None:
        if self._done:
            return
        if not self._ready:
            if self._respawns < MAX_RESPAWNS and is_transient_start_failure(self._log_tail()):
                self._respawns += 1
                logger.debug("opencode failed to start ({}); starting it again", code)
                self._spawn()
                return
            self._fail(f"opencode exited with {_describe_exit(code)} before it was ready")
            return
        self._done = True
        self._quit.set()
        process.terminate_group(self._proc, grace=0.5)  # sweep children it left behind
        process.kill_marked(self._password)
        reason = f"opencode server died ({_describe_exit(code)})"
        self._publish(ServerExited(exit_code=code, reason=reason, log_tail=self._log_tail()))

    def _shutdown(self) -> int | None:
        if self._timer is not None:
            self._timer.cancel()
        proc, self._proc = self._proc, None
        code = None
        if proc is not None:
            sweep = self._ready and self._abort_on_stop and proc.poll() is None
            code = _stop(proc, self._url if sweep else None, self._password, self._grace)
        if self._log is not None:
            self._log.close()
        return code

    def _log_tail(self) -> tuple[str, ...]:
        return process.read_log_tail(self._spec.log_path) if self._log is not None else ()

    # -- threads (they only tell) --------------------------------------------------------------

    def _tell(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(message)

    def _pump_stdout(self, proc: subprocess.Popen[str]) -> None:
        log = self._log
        for line in proc.stdout:
            with contextlib.suppress(ValueError):  # the log closes while we drain
                log.write(line)
                log.flush()
            found = parse_listening_line(line)
            if found is not None:
                self._tell(_Listening(found[0]))

    def _watch_lease(self, pid: int) -> None:
        """Until the actor stops: tell it when the leased server's process ends."""
        try:
            if process.wait_gone(pid, self._quit):
                self._tell(_LeaseGone(pid))
        except Exception:  # a watch that died unseen would hide the server's death
            logger.exception("watching the leased opencode server (pid {}) failed", pid)

    def _probe_in_thread(self, url: str) -> None:
        process.start_thread("opencode-probe", lambda: self._tell(self._probe(url)))

    def _probe(self, url: str) -> _Healthy | _Unhealthy:
        until = self._deadline
        version, problem = _server_http.probe(url, self._password, self._quit, self._clock, until)
        return _Healthy(version) if problem is None else _Unhealthy(problem)


def _stop(
    proc: subprocess.Popen[str], sweep: str | None, password: str, grace: float
) -> int | None:
    """Abort the busy sessions of the server at `sweep` (None: every session is idle), then
    stop the process group; its exit code."""
    try:
        if sweep is not None:
            _server_http.abort_busy_sessions(sweep, password)
    finally:
        code = process.terminate_group(proc, grace)
        strays = process.kill_marked(password)
    swept = "skipped" if sweep is None else "done"
    logger.debug(
        "opencode pid {} stopped with {} ({} strays, abort sweep {})", proc.pid, code, strays, swept
    )
    return code


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"
