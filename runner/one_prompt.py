"""`run_one_prompt`: the server, the event pipeline and one prompt, end to end.

The smallest complete composition: start (or attach to) the server, create a session that
denies the blocking tools, start the pipeline, send the prompt once the stream is connected,
and wait until the session is idle with everything emitted. The phase supervisor grows from
the same parts; the event-pipeline tests run on this.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors._process import ServerSpec
from actors.opencode_client import OpencodeClient
from actors.server import ServerActor
from actors.sse_reader import ReconnectPolicy
from actors.transcript import TranscriptWriter
from core.errors import ServerStartError, StreamError
from core.permissions import PermissionPolicy
from messages.server import ServerExited, ServerFailed, ServerReady
from messages.stream import StreamConnected, StreamFailed
from runner.compose import (
    DENY_BLOCKING_TOOLS,
    Pipeline,
    PipelineSpec,
    PromptOutcome,
    ViewOptions,
    start_reader,
    wait_for_idle,
)
from runner.hub import StreamHub


@dataclass(frozen=True, slots=True, kw_only=True)
class OnePrompt:
    """One prompt to run on a fresh (or attached) server."""

    server: ServerSpec
    prompt: str
    transcript_path: str
    model: str | None = None
    agent: str | None = None
    title: str = "runner"
    policy: PermissionPolicy = field(default_factory=PermissionPolicy)
    view: ViewOptions = field(default_factory=ViewOptions)
    timeout: float = 120.0
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    via: Callable[[str], str] | None = None  # rewrites the event stream's base URL (proxies)
    on_ready: Callable[[ServerReady, str], None] | None = None  # (ready, session id) hook
    observe: Callable[[Any], None] | None = None  # sees every published message, live
    deny_blocking_tools: bool = True


def run_one_prompt(job: OnePrompt) -> PromptOutcome:
    """Run the prompt to idle; the outcome lists every message the pipeline published."""
    observed: queue.Queue[Any] = queue.Queue()
    server = ServerActor.start(spec=job.server, publish=observed.put)
    try:
        ready = _await(observed, ServerReady, (ServerFailed,), job.server.start_timeout + 5)
        directory = job.server.directory
        client = OpencodeClient(ready.url, password=ready.password, directory=directory)
        rules = list(DENY_BLOCKING_TOOLS) if job.deny_blocking_tools else None
        info = client.create_session(
            title=job.title, agent=job.agent, model=job.model, permission=rules
        )
        session_id = info["id"]
        if job.on_ready is not None:
            job.on_ready(ready, session_id)
        return _drive(job, client, ready, session_id, observed)
    finally:
        server.stop()


def _drive(job, client, ready, session_id, observed) -> PromptOutcome:
    header = {"phase": job.title, "session_id": session_id, "opencode_version": ready.version}
    writer = TranscriptWriter(job.transcript_path, header)
    reader_client = client
    if job.via is not None:
        reader_client = OpencodeClient(
            job.via(ready.url), password=ready.password, directory=job.server.directory
        )
    hub = StreamHub()
    pipe = Pipeline.start(
        PipelineSpec(
            client=client,
            session_id=session_id,
            policy=job.policy,
            view=job.view,
            transcript=writer,
            observe=observed.put,
            extra_consumers=(job.observe,) if job.observe else (),
            hub=hub,
        )
    )
    reader = start_reader(reader_client, hub, job.reconnect)
    try:
        early: list[Any] = []
        _await(observed, StreamConnected, (StreamFailed, ServerExited), 30, seen=early)
        client.prompt_async(session_id, job.prompt, model=job.model, agent=job.agent)
        seen, idle, reason = wait_for_idle(
            observed, session_id, timeout=job.timeout, stop_on=(StreamFailed, ServerExited)
        )
        seen = early + seen
        snapshot = tuple(client.messages(session_id))
    finally:
        reader.stop()
        pipe.stop()
        writer.close()
    return PromptOutcome(
        session_id=session_id, messages=tuple(seen), idle=idle, reason=reason, snapshot=snapshot
    )


def _await(
    observed: queue.Queue,
    kind: type,
    failures: tuple[type, ...],
    timeout: float,
    seen: list[Any] | None = None,
) -> Any:
    """The first message of `kind`; failures raise; others are kept in `seen`."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            message = observed.get(timeout=remaining)
        except queue.Empty:
            break
        if seen is not None:
            seen.append(message)
        if isinstance(message, kind):
            return message
        if isinstance(message, ServerFailed):
            raise ServerStartError(message.reason)
        if isinstance(message, failures):
            raise StreamError(getattr(message, "reason", type(message).__name__))
    raise StreamError(f"no {kind.__name__} within {timeout:g}s")
