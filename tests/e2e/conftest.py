"""End-to-end fixtures: the real opencode server behind the mock LLM, isolated per test."""

from __future__ import annotations

import json
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from actors import OpencodeClient, ServerSpec
from actors.sse_reader import SseReaderActor
from messages import ServerFailed, ServerReady
from messages.stream import EventsReceived, StreamConnected
from mock import MockLLM, opencode_provider_config
from runner.compose import DENY_BLOCKING_TOOLS
from tests.helpers import Inbox, isolated_env, make_project, start_server


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
            title=title, model="test/mock-model", permission=list(DENY_BLOCKING_TOOLS)
        )
        return info["id"]


@pytest.fixture
def stack(tmp_path):
    """Factory: `stack(script, **opencode_config)` starts everything; teardown stops it."""
    started: list[Any] = []

    def build(script: Any, **config_overrides: Any) -> Stack:
        mock = MockLLM(script).start()
        started.append(mock.stop)
        project = make_project(tmp_path)
        config = {**opencode_provider_config(mock.url), **config_overrides}
        spec = ServerSpec(
            directory=str(project),
            log_path=str(tmp_path / "server.log"),
            env=isolated_env(tmp_path),
            config_content=json.dumps(config),
        )
        inbox = Inbox()
        server = start_server(spec, inbox)
        started.append(server.stop)
        ready = inbox.expect((ServerReady, ServerFailed), timeout=40)
        assert isinstance(ready, ServerReady), ready
        client = OpencodeClient(ready.url, password=ready.password, directory=str(project))
        tap = EventTap()
        reader = SseReaderActor.start(client=client, subscribers=[tap], publish=inbox)
        started.append(reader.stop)
        inbox.expect(StreamConnected, timeout=10)
        return Stack(mock=mock, ready=ready, client=client, tap=tap, project=project)

    yield build
    for stop in reversed(started):
        stop()
