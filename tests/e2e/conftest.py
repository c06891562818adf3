"""End-to-end fixtures: the real opencode server behind the mock LLM, isolated per test."""

from __future__ import annotations

import io
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from actors import OpencodeClient
from actors.sse_reader import SseReaderActor
from core.permissions import BLOCKING_RULES
from messages import ServerReady
from messages.records import VerdictReached
from messages.stream import EventsReceived, StreamConnected
from mock import FaultProxy, MockLLM
from tests.helpers import Inbox, make_project
from tests.warm import WarmServers


@dataclass
class EventTap:
    """Every event of the directory's `/event` stream, in order, for tests to wait on."""

    events: queue.Queue = field(default_factory=queue.Queue)
    seen: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, batch: EventsReceived) -> None:
        for event in batch.events:
            self.events.put(event)

    def wait_for(self, predicate, timeout: float) -> dict[str, Any]:
        """The first event (not seen before) matching `predicate`; fail after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                types = [event.get("type") for event in self.seen]
                raise AssertionError(f"no matching event within {timeout}s; saw {types}")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(event)
            if predicate(event):
                return event

    def wait_idle(self, session_id: str, timeout: float) -> dict[str, Any]:
        """Wait for `session.idle` of the session."""
        return self.wait_for(
            lambda e: (
                e.get("type") == "session.idle" and e["properties"].get("sessionID") == session_id
            ),
            timeout,
        )

    def of_type(self, event_type: str, session_id: str) -> list[dict[str, Any]]:
        """Events of one type for one session seen so far."""
        return [
            e
            for e in self.seen
            if e.get("type") == event_type and e["properties"].get("sessionID") == session_id
        ]


@dataclass
class Stack:
    """A running mock LLM + opencode server + event tap for one test."""

    mock: MockLLM
    ready: ServerReady
    client: OpencodeClient
    tap: EventTap
    project: Path

    def new_session(self, title: str = "e2e") -> str:
        """A session on the mock model with the blocking tools denied."""
        info = self.client.create_session(
            title=title,
            model="test/mock-model",
            permission=[rule.as_dict() for rule in BLOCKING_RULES],
        )
        return info["id"]


@pytest.fixture(scope="session")
def _warm_pool(tmp_path_factory):
    """This process's warm opencode servers (`tests.warm`), stopped at the end of the session."""
    servers = WarmServers(tmp_path_factory.mktemp("warm"))
    yield servers
    servers.stop()


@pytest.fixture
def warm_servers(_warm_pool):
    """The warm servers, for one test: after it, those it took drop what its phases left."""
    yield _warm_pool
    _warm_pool.settle()


@pytest.fixture
def stack(tmp_path, warm_servers):
    """Factory: `stack(script, **opencode_config)`: a warm server behind the mock serving
    `script`, a project of the test's own and its event tap; teardown stops the tap."""
    started: list[Any] = []

    def build(script: Any, **config_overrides: Any) -> Stack:
        warm = warm_servers.take(script, config_overrides or None)
        project = make_project(tmp_path)
        client = OpencodeClient(warm.url, password=warm.password, directory=str(project))
        tap = EventTap()
        inbox = Inbox()
        reader = SseReaderActor.start(client=client, subscribers=[tap], publish=inbox)
        started.append(reader.stop)
        inbox.expect(StreamConnected, timeout=10)
        return Stack(mock=warm.mock, ready=warm.ready, client=client, tap=tap, project=project)

    yield build
    for stop in reversed(started):
        stop()


@dataclass
class Attached:
    """One phase run through the embedding API against a server the test started (so the
    session can be read after the phase, and a fault proxy can sit in between)."""

    result: Any
    out: str
    snapshot: list[dict[str, Any]]
    transcript: list[dict[str, Any]]
    published: list[Any]
    mock: MockLLM
    project: Path

    def records(self, kind: type) -> list[Any]:
        """Published messages of one type, in order."""
        return [message for message in self.published if isinstance(message, kind)]

    def transcript_types(self) -> list[str]:
        """The `type` of every transcript line."""
        return [line.get("type") for line in self.transcript]


@pytest.fixture
def attached(tmp_path, monkeypatch, warm_servers):
    """Factory: `attached(script, config=..., proxy=callable, **phase_keys)` runs one phase with
    `server.attach` on a warm opencode (behind the mock) and returns an `Attached`.

    `proxy(FaultProxy)` is called with a proxy already between the runner and the server (the
    phase attaches to the proxy) before the phase starts; `during(mock, proxy)` runs in a
    thread while the phase runs."""
    from runner.api import run_phase
    from runner.phase import load_phase

    def go(script, *, config=None, proxy=None, during=None, mode="json", **phase_keys):
        warm = warm_servers.take(script, config)
        mock = warm.mock
        project = make_project(tmp_path / f"p{len(list(tmp_path.iterdir()))}")
        monkeypatch.setenv("OPENCODE_SERVER_PASSWORD", warm.password)
        fault = None
        try:
            url = warm.url
            if proxy is not None:
                fault = FaultProxy(warm.url).start()
                proxy(fault)
                url = fault.url
            phase = {
                "name": "attached",
                "prompt": "Do the task",
                "model": "test/mock-model",
                "directory": str(project),
                "server": {"attach": url},
                "timeouts": {"phase": "2m", "stall": "1m"},
                **phase_keys,
            }
            path = tmp_path / f"{project.name}.yaml"
            path.write_text(yaml.safe_dump(phase))
            out, published, delivered = io.StringIO(), [], threading.Event()

            def on_event(message):
                published.append(message)
                if isinstance(message, VerdictReached):
                    delivered.set()

            conductor = None
            if during is not None:
                conductor = threading.Thread(target=during, args=(mock, fault), daemon=True)
                conductor.start()
            result = run_phase(load_phase(path), mode=mode, out=out, on_event=on_event)
            assert delivered.wait(30), "on_event never saw the verdict"
            if conductor is not None:
                conductor.join(timeout=10)
            client = OpencodeClient(warm.url, password=warm.password, directory=str(project))
            snapshot = client.messages(result.session_id) if result.session_id else []
        finally:
            if fault is not None:
                fault.stop()
        with open(result.transcript) as handle:
            transcript = [json.loads(line) for line in handle]
        return Attached(result, out.getvalue(), snapshot, transcript, published, mock, project)

    return go
