"""SharedServer: one opencode server, and one event reader per directory, for several phases.

A phase runs on a `SharedServer` of its own, or on one it shares with the other phases of a
`run_phases` call that ask for the same server. The server starts once; a phase waits for it
without holding a lock, so each waiting phase can be cancelled on its own. A failure to start,
or the server's death, is remembered, so every phase (started now or later) fails with that
reason. A reader whose stream failed is replaced for the next phase that asks.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

from actors.opencode_client import OpencodeClient
from actors.process import Prespawned, ServerSpec, remove_data_dir
from actors.server import ServerActor
from actors.sse_reader import ReconnectPolicy, SseReaderActor
from actors.worker import stop_actor
from core.errors import RunnerError
from core.protocol import wire_for
from messages.server import ServerExited, ServerFailed, ServerReady
from runner._logs import logger
from runner.servers.lease import Lease, PoolRefusedError
from runner.servers.streams import StreamHub

_SLICE = 0.1  # how often a waiting phase looks at its cancel flag
STOP_TIMEOUT = 30.0
ABORT_TIMEOUT = 2.0  # a session's abort at a phase's bad end: it must not hold the end up


class SharedServer:
    """One opencode server (and one event reader per directory) for several phases."""

    def __init__(
        self,
        spec: ServerSpec,
        prespawned: Prespawned | None = None,
        *,
        lease: Lease | None = None,
        lend: Callable[[], tuple[ServerSpec, Lease]] | None = None,
    ) -> None:
        self.spec = spec
        self._prespawned = prespawned  # started early by the CLI: the actor adopts it
        # The pool daemon's server: lent already (`spec` attaches to it), or lent when this
        # server starts (`lend`; refused: `spec`, ours, starts instead).
        self.lease = lease
        self._lend = lend
        self._lending = threading.Lock()
        self._lock = threading.Lock()
        self._settled = threading.Event()
        self._ref: pykka.ActorRef | None = None
        self._ready: ServerReady | None = None
        self._failure: ServerFailed | None = None
        self._hubs: dict[StreamKey, tuple[StreamHub, pykka.ActorRef]] = {}
        self._users: dict[StreamKey, int] = {}  # phases using each reader
        self._watchers: list[Callable[[Any], None]] = []
        self._stopped = False  # `stop` was called: it never starts again

    def ready(self, cancelled: threading.Event | None = None) -> ServerReady:
        """Start the server once and wait for it; `StartFailedError` if it cannot start (every
        time asked), `StartCancelledError` if `cancelled` is set first."""
        self._take_lease()
        with self._lock:
            if self._stopped:
                raise StartCancelledError("the server was stopped before it started")
            if self._ref is None:
                self._ref = ServerActor.start(
                    spec=self.spec, publish=self._relay, prespawned=self._prespawned
                )
        deadline = time.monotonic() + self.spec.start_timeout + 10
        while not self._settled.wait(_SLICE):
            if cancelled is not None and cancelled.is_set():
                raise StartCancelledError("cancelled while the server was starting")
            if time.monotonic() >= deadline:
                self._settle(ServerFailed(reason="the server actor never reported"))
        if self._failure is not None:
            raise StartFailedError(self._failure)
        assert self._ready is not None
        return self._ready

    def _take_lease(self) -> None:
        """Once, before the server starts: the pool daemon's server, if it lends one."""
        with self._lending:
            lend, self._lend = self._lend, None
            if lend is None or self._stopped:
                return
            try:
                self.spec, self.lease = lend()
            except PoolRefusedError as exc:
                logger.warning("starting a server of our own: {}", exc)

    @property
    def pid(self) -> int | None:
        """The server's process id, once it is up (None for an attached one)."""
        ready = self._ready
        return ready.pid if ready is not None else None

    @property
    def version(self) -> str | None:
        """The server's opencode version, once it is up."""
        ready = self._ready
        return ready.version if ready is not None else None

    @property
    def failed(self) -> bool:
        """True once the server could not start or died: phases must not be given it."""
        return self._failure is not None

    def watch(self, consumer: Callable[[Any], None]) -> Callable[[], None]:
        """Also hand server news (a death, even one before this call) to `consumer`; returns
        the undo."""
        with self._lock:
            self._watchers.append(consumer)
            died = self._failure if self._ready is not None else None
        if died is not None:
            consumer(died)
        return lambda: self._unwatch(consumer)

    def hub(self, client: OpencodeClient, policy: ReconnectPolicy, secrets: tuple[str, ...]):
        """The stream hub of the client's directory read with `policy` and `secrets`, its
        reader started on first use (or again, when the last one's stream failed). Phases in
        one directory share a reader when they read it alike; a phase with other timeouts
        (its outage budget) gets a reader of its own rather than another phase's settings."""
        key = stream_key(client, policy, secrets)
        with self._lock:
            found = self._hubs.get(key)
            failed = None
            if found is not None and found[0].failed:
                logger.debug("the event stream of {} failed; starting a new reader", key)
                failed, found = found[1], None
            if found is None:
                hub = StreamHub()
                reader = SseReaderActor.start(
                    client=client,
                    subscribers=(hub.on_events,),
                    publish=hub.on_news,
                    policy=policy,
                    secrets=secrets,
                )
                hub.attach(reader)
                found = self._hubs[key] = (hub, reader)
            self._users[key] = self._users.get(key, 0) + 1
        if failed is not None:
            stop_actor(failed, 10)
        return found[0]

    def abort_session(self, session_id: str) -> None:
        """Stop a session's turn (a phase that ended badly leaves nothing running), if the
        server ever came up; a failure is only logged (the phase has its verdict already)."""
        ready = self._ready
        if ready is None:
            return
        client = OpencodeClient(
            ready.url,
            password=ready.password,
            timeout=ABORT_TIMEOUT,
            wire=wire_for(ready.capabilities),
        )
        try:
            client.abort(session_id)
        except RunnerError as exc:
            logger.debug("could not abort session {}: {}", session_id, exc)
        finally:
            client.close()

    def release(self, key: StreamKey) -> None:
        """A phase that asked for `hub` (`key`: `stream_key` of what it asked with) is over;
        the reader stops with its last phase (a long batch of phases in different directories
        keeps no idle streams open)."""
        with self._lock:
            users = self._users.get(key, 0) - 1
            self._users[key] = max(users, 0)
            idle = self._hubs.pop(key, None) if users <= 0 else None
        if idle is not None:
            logger.debug("the event stream of {} has no phase left; stopping its reader", key[0])
            stop_actor(idle[1], 10)

    def stop(self, *, quick: bool = False, settled: bool = False) -> None:
        """Stop readers, then the server (`quick`: an interrupt, half a second of grace;
        `settled`: every phase on it ended done, its session idle, so no abort sweep)."""
        with self._lock:
            self._stopped = True
            hubs, self._hubs = list(self._hubs.values()), {}
            ref = self._ref
            early = self._prespawned
        for _, reader in hubs:
            stop_actor(reader, 10)
        if ref is None and early is not None:  # started early for phases that never came
            early.discard()
        if ref is not None:
            if quick or settled:  # queued before the stop, never waited for
                with contextlib.suppress(pykka.ActorDeadError):
                    ref.proxy().prepare_stop(quick=quick, sweep=not settled)
            stop_actor(ref, STOP_TIMEOUT)
        if self.spec.data_dir is not None:  # `server.isolate`: the run's data goes with it
            remove_data_dir(self.spec.data_dir)
            logger.debug("removed the server's data folder {}", self.spec.data_dir)

    def _relay(self, message: Any) -> None:
        if isinstance(message, ServerReady | ServerFailed) and not self._settled.is_set():
            self._settle(message)
            return
        if isinstance(message, ServerExited | ServerFailed):  # later phases must not use it
            self._failure = ServerFailed(reason=message.reason, log_tail=message.log_tail)
        with self._lock:
            watchers = list(self._watchers)
        for consumer in watchers:
            consumer(message)

    def _settle(self, message: ServerReady | ServerFailed) -> None:
        with self._lock:
            if self._settled.is_set():
                return
            if isinstance(message, ServerReady):
                self._ready = message
            else:
                self._failure = message
            self._settled.set()

    def _unwatch(self, consumer: Callable[[Any], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._watchers.remove(consumer)


StreamKey = tuple[str, ReconnectPolicy, tuple[str, ...]]


def stream_key(
    client: OpencodeClient, policy: ReconnectPolicy, secrets: tuple[str, ...]
) -> StreamKey:
    """What makes two phases' event readers interchangeable: the directory, how the stream
    is kept up, and what is masked."""
    return (client.directory or "", policy, secrets)


class StartFailedError(RunnerError):
    """The server could not start; carries the last lines of its log."""

    def __init__(self, message: ServerFailed) -> None:
        super().__init__(message.reason)
        self.log_tail = message.log_tail


class StartCancelledError(RunnerError):
    """The phase was cancelled while it waited for its server."""
