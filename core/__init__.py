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

__all__ = [
    "PhaseFileError",
    "RequestTimeoutError",
    "RunnerError",
    "ServerStartError",
    "ServerUnreachableError",
    "StreamError",
    "UpstreamHTTPError",
]
