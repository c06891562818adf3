"""Pure logic of the runner: no IO, no threads, no clocks; standard library only.

The re-exports load on first use (PEP 562): the CLI imports a light module of the package (the
errors, say) before it starts opencode, and the tracker and the decoder are not needed then.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Effect": "core.tracker",
    "PhaseFileError": "core.errors",
    "RequestTimeoutError": "core.errors",
    "RunnerError": "core.errors",
    "ServerStartError": "core.errors",
    "ServerUnreachableError": "core.errors",
    "SnapshotShapeError": "core.tracker",
    "SseDecoder": "core.sse",
    "SseFrame": "core.sse",
    "StreamError": "core.errors",
    "Tracker": "core.tracker",
    "UpstreamHTTPError": "core.errors",
    "parse_event": "core.sse",
}

__all__ = [
    "Effect",
    "PhaseFileError",
    "RequestTimeoutError",
    "RunnerError",
    "ServerStartError",
    "ServerUnreachableError",
    "SnapshotShapeError",
    "SseDecoder",
    "SseFrame",
    "StreamError",
    "Tracker",
    "UpstreamHTTPError",
    "parse_event",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
