"""Pure logic of the runner: no IO, no threads, no clocks; standard library only."""

from core.errors import (
    PhaseFileError,
    RequestTimeoutError,
    RunnerError,
    ServerStartError,
    ServerUnreachableError,
    StreamError,
    UpstreamHTTPError,
)
from core.sse import SseDecoder, SseFrame, parse_event
from core.tracker import Effect, SnapshotShapeError, Tracker

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
