"""What the supervisor makes of each message it receives: pure, tested with scripted histories.

Theory of operation. `Watch.on(message)` returns a `Step`: the messages to publish and, when
the phase is over, its end. The first `StreamConnected` begins the termination policy (`Begin`);
later ones that are reconnects are counted, as are resyncs. A dead or failed server becomes a
visible error with its last log lines and `EndPhase(failed)`: the termination policy concludes.
A crashed or stopped actor ends the phase `failed` at once (the supervisor adds the attempts
so far). The policy's `Concluded` ends it as concluded. `cancel(reason)` gives the
`EndPhase(interrupted)` to publish, once; `expired()` is the end when no verdict came in time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.termination import EXIT_CODES
from messages.control import ActorCrashed, ActorStopped, Begin, Concluded, EndPhase
from messages.records import Notice, Resynced
from messages.server import ServerExited, ServerFailed
from messages.stream import StreamConnected


@dataclass(frozen=True, slots=True)
class Step:
    """What to do after one message: publish these, and end the phase if `end` is set."""

    publish: tuple[Any, ...] = ()
    end: Concluded | None = None


@dataclass(slots=True)
class Watch:
    """The supervisor's decisions and the counts it keeps for the result."""

    begun: bool = False
    cancelled: str | None = None  # the reason
    reconnects: int = 0
    resyncs: int = 0
    log_tail: tuple[str, ...] = field(default=())

    def on(self, message: Any) -> Step:
        """Decide what one message means for the phase."""
        match message:
            case Concluded():
                return Step(end=message)
            case StreamConnected() if not self.begun:
                self.begun = True
                return Step(publish=(Begin(),))
            case StreamConnected():
                self.reconnects += message.is_reconnect
            case Resynced():
                self.resyncs += 1
            case (
                ServerExited(reason=reason, log_tail=tail)
                | ServerFailed(reason=reason, log_tail=tail)
            ):
                self.log_tail = tail
                error = Notice(level="error", text=_with_tail(reason, tail))
                return Step(publish=(error, EndPhase(verdict="failed", reason=reason)))
            case ActorCrashed(actor=actor, reason=reason):
                return Step(end=concluded("failed", f"the {actor} crashed: {reason}"))
            case ActorStopped(actor=actor):
                return Step(end=concluded("failed", f"the {actor} stopped unexpectedly"))
        return Step()

    def cancel(self, reason: str) -> Step:
        """An interrupt: the policy aborts the session and concludes `interrupted` (once)."""
        if self.cancelled is not None:
            return Step()
        self.cancelled = reason
        return Step(publish=(EndPhase(verdict="interrupted", reason=reason),))

    def expired(self) -> Step:
        """No verdict came in time: within the phase timeout and its margin (failed), or soon
        after a cancel (interrupted)."""
        if self.cancelled is not None:
            return Step(end=concluded("interrupted", self.cancelled))
        return Step(end=concluded("failed", "the supervisor gave up waiting for a verdict"))


def concluded(verdict: str, reason: str, summary: dict[str, Any] | None = None) -> Concluded:
    """A conclusion decided outside the termination policy."""
    return Concluded(
        verdict=verdict, reason=reason, exit_code=EXIT_CODES[verdict], summary=summary or {}
    )


def _with_tail(reason: str, tail: tuple[str, ...]) -> str:
    return reason + ("\nlast server log lines:\n" + "\n".join(tail[-10:]) if tail else "")
