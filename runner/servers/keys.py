"""Which server a phase needs, and starting the first ones early.

Phases share a server when they ask for the same one (`server_key`): the same binary,
configuration, attachment and isolation. `server_spec` is what the server actor is given.
`prestart` spawns, before the heavy imports, the servers the first phases need; their actors
adopt them (`actors.process.Prespawned`). Light on purpose: the CLI imports it before opencode
starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from actors.process import Prespawned, ServerSpec
from core.errors import ServerStartError
from runner.phase import PhaseSpec
from runner.phase.derive import sibling

__all__ = ["prestart", "server_key", "server_spec"]


def server_spec(spec: PhaseSpec, env: Mapping[str, str]) -> ServerSpec:
    """The server a phase asks for (`server.isolate`: its data folder beside the transcript)."""
    isolated = spec.server.isolate and spec.server.attach is None
    return ServerSpec(
        directory=str(spec.directory),
        log_path=sibling(spec.output.transcript, ".server.log"),
        binary=spec.server.opencode,
        env=dict(env),
        config_content=spec.config_content,
        start_timeout=spec.timeouts.start,
        attach_url=spec.server.attach,
        attach_password=os.environ.get("OPENCODE_SERVER_PASSWORD"),
        data_dir=sibling(spec.output.transcript, ".opencode-data") if isolated else None,
    )


def server_key(spec: PhaseSpec) -> tuple[Any, ...]:
    """What makes two phases need different servers: binary, configuration, attachment."""
    return (spec.server.opencode, spec.config_content, spec.server.attach, spec.server.isolate)


def prestart(
    specs: list[PhaseSpec], parallel: int, leased: Mapping[Any, Any] | None = None
) -> dict[tuple[Any, ...], Prespawned]:
    """Start the servers the first `parallel` phases need, now, but those `leased` from the
    pool daemon; their actors adopt them later (the other phases' servers start when those
    phases do, as before). A server that cannot be started here is started again by its
    actor, which reports why it fails."""
    started: dict[tuple[Any, ...], Prespawned] = {}
    for spec in specs[:parallel]:
        key = server_key(spec)
        if spec.server.attach or key in started or key in (leased or {}):
            continue
        try:
            started[key] = Prespawned.start(server_spec(spec, {}))
        except (ServerStartError, OSError):
            continue
    return started
