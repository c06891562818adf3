"""Messages the server-lifecycle actor sends and receives."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.opencode_versions import Capabilities, capabilities


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerReady:
    """The server answers health checks; requests may be sent from now on."""

    url: str
    version: str
    password: str | None = field(repr=False)
    pid: int | None
    log_path: str | None
    attached: bool
    origin: str | None = None  # where a leased server came from (the pool daemon)

    @property
    def capabilities(self) -> Capabilities:
        """What this server's version offers (heartbeats, routes, structured output)."""
        return capabilities(self.version)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerFailed:
    """The server could not be started or reached; nothing was left running."""

    reason: str
    log_tail: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerExited:
    """The server process died without being asked to (mid-phase)."""

    exit_code: int | None
    reason: str
    log_tail: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerStopped:
    """The server was stopped on request (or detached from, in attach mode)."""

    exit_code: int | None
    attached: bool
