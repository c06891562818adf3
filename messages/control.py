"""Messages that steer a phase: the termination actor's commands, its conclusion, and the
reports actors push to the supervisor when they crash or stop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Begin:
    """The stream is connected: send the first prompt."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EndPhase:
    """Something outside the session ended the phase (server died, stream lost, interrupt)."""

    verdict: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """Time passed: the termination actor reads its clock and checks timeouts and graces."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Concluded:
    """The termination policy's decision; the supervisor turns it into the phase's verdict."""

    verdict: str
    reason: str
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorCrashed:
    """An actor's handler raised: it is dead, and the phase with it."""

    actor: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorStopped:
    """An actor stopped (expected only while the phase shuts down)."""

    actor: str
