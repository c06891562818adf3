"""Did the prompt start a turn? The lost-prompt check of one attempt (pure).

`prompt_async` answers 204 before the prompt runs; opencode has been seen to accept one and never
start its turn (#46792): the phase would then wait for the stall timeout. So `CONFIRM_AFTER`
seconds after the prompt went out, unless the session showed it started (a `busy` or `retry`
status, or an assistant message newer than the baseline), the actor is asked to look
(`CheckPrompt`: the session's status and latest messages). If the turn has not started, the
prompt is sent once more (`Resend`): every prompt carries a client-made message and part id,
and opencode 1.18 stores a prompt sent twice with the same ids once, so a resend of a prompt
that did arrive duplicates nothing. After the resend the check runs once more; then the stall
timeout rules.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CONFIRM_AFTER", "CheckPrompt", "PromptWatch", "Resend"]

CONFIRM_AFTER = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckPrompt:
    """Look whether attempt `number`'s prompt started a turn (`Policy.prompt_checked`)."""

    number: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Resend:
    """Send attempt `number`'s prompt again, with the same ids."""

    number: int


class PromptWatch:
    """The current attempt's prompt: when it went out, whether its turn started."""

    __slots__ = ("_checks", "_number", "_posted_at", "_resent", "started")

    def __init__(self) -> None:
        self._number = 0
        self._posted_at: float | None = None
        self._checks = 0
        self._resent = False
        self.started = False

    def posted(self, number: int, now: float) -> None:
        """Attempt `number`'s prompt goes out now."""
        self._number = number
        self._posted_at = now
        self._checks = 0
        self._resent = False
        self.started = False

    def saw_start(self) -> None:
        """The session showed the turn started."""
        self.started = True

    def due(self, now: float) -> CheckPrompt | None:
        """A check, when the prompt went out `CONFIRM_AFTER` ago without a sign of its turn."""
        posted = self._posted_at
        if self.started or posted is None or self._checks > int(self._resent):
            return None
        if now - posted < CONFIRM_AFTER:
            return None
        self._checks += 1
        return CheckPrompt(number=self._number)

    def checked(self, started: bool, now: float) -> Resend | None:
        """What the check found; a resend when the turn did not start (once)."""
        if started or self.started:
            self.started = True
            return None
        if self._resent:
            return None
        self._resent = True
        self._posted_at = now
        return Resend(number=self._number)
