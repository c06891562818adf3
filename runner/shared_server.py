"""SharedServer: one opencode server, and one event reader per directory, for several phases.

A phase runs on a `SharedServer` of its own, or on one it shares with the other phases of a
`run_phases` call that ask for the same server. The server starts once; a failure to start,
or its death, is remembered, so every phase (started now or later) fails with that reason.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pykka

from actors._process import ServerSpec
from actors.opencode_client import OpencodeClient
from actors.server import ServerActor
from core.errors import RunnerError
from messages.server import ServerExited, ServerFailed, ServerReady
from runner.compose import start_reader
from runner.hub import StreamHub
from runner.phase import PhaseSpec


class SharedServer:
    """One opencode server (and one event reader per directory) for several phases."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._ref: pykka.ActorRef | None = None
        self._ready: ServerReady | None = None
        self._failure: ServerFailed | None = None
        self._hubs: dict[str, tuple[StreamHub, pykka.ActorRef]] = {}
        self._watchers: list[Callable[[Any], None]] = []

    def ready(self) -> ServerReady:
        """Start the server once; raise `RunnerError` if it cannot start (every time asked)."""
        with self._lock:
            if self._ready is None and self._failure is None:
                self._ref = ServerActor.start(spec=self.spec, publish=self._relay)
                try:
                    message = self._inbox.get(timeout=self.spec.start_timeout + 10)
                except queue.Empty:
                    message = ServerFailed(reason="the server actor never reported")
                if isinstance(message, ServerFailed):
                    self._failure = message
                else:
                    self._ready = message
            if self._failure is not None:
                raise StartFailedError(self._failure)
            return self._ready

    def watch(self, consumer: Callable[[Any], None]) -> None:
        """Also hand later server news (a death) to `consumer`."""
        self._watchers.append(consumer)

    def hub(self, client: OpencodeClient) -> StreamHub:
        """The stream hub of the client's directory, with its reader started on first use."""
        with self._lock:
            key = client.directory or ""
            if key not in self._hubs:
                hub = StreamHub()
                self._hubs[key] = (hub, start_reader(client, hub))
            return self._hubs[key][0]

    def stop(self) -> None:
        """Stop readers, then the server (it aborts busy sessions first)."""
        for _, reader in self._hubs.values():
            with contextlib.suppress(Exception):
                reader.stop(timeout=10)
        self._hubs.clear()
        if self._ref is not None:
            with contextlib.suppress(Exception):
                self._ref.stop(timeout=30)

    def _relay(self, message: Any) -> None:
        if isinstance(message, ServerReady | ServerFailed) and self._ready is None:
            self._inbox.put(message)
            return
        if isinstance(message, ServerExited):  # phases that start later must not use it
            self._failure = ServerFailed(reason=message.reason, log_tail=message.log_tail)
        for consumer in list(self._watchers):
            consumer(message)


class StartFailedError(RunnerError):
    def __init__(self, message: ServerFailed) -> None:
        super().__init__(message.reason)
        self.log_tail = message.log_tail


def sibling(transcript: os.PathLike[str] | str, suffix: str) -> str:
    """A file beside the transcript: `runs/x.jsonl` -> `runs/x.server.log`."""
    path = str(transcript)
    return (path[: -len(".jsonl")] if path.endswith(".jsonl") else path) + suffix


def server_spec(spec: PhaseSpec, env: Mapping[str, str]) -> ServerSpec:
    """The server a phase asks for."""
    return ServerSpec(
        directory=str(spec.directory),
        log_path=sibling(spec.output.transcript, ".server.log"),
        binary=spec.server.opencode,
        env=dict(env),
        config_content=spec.config_content,
        start_timeout=spec.timeouts.start,
        attach_url=spec.server.attach,
        attach_password=os.environ.get("OPENCODE_SERVER_PASSWORD"),
    )
