"""The termination policy: when is a phase really finished, and what happens when it is not.

Theory of operation. The policy is a state machine fed with tracked effects, permission
answers, clock ticks and the outcomes of the IO it asked for; it returns effects (values) the
termination actor performs. Each input method reads its input, names the `Trigger` it amounts
to, and asks the one transition table (`core._termination_rules`) whether that trigger is legal
in the current `State`; an illegal one is ignored: no effects, and the state stays (the table
is drawn in `core._termination_rules`). A prompt that never starts its turn is sent once more
(`core._prompt_watch`).

An idle ends an attempt only after the attempt showed life (an assistant message newer than
its baseline, or a session error): opencode repeats idles after errors and aborts,
and those stale repeats must not end the next attempt. At the attempt's end the finish
reason of the latest assistant message is classified (`ok`, `cut`, `failure`), the `done`
checks run, and this table gives the verdict: ok + checks pass is `done`; cut + checks
pass with no permission rejected is `done_gracefully`; a provider error is `failed`; otherwise
a repair (ok finish, only front-matter/command failures) or a resume, each within its budget,
else `incomplete`. Every follow-up is decided once per attempt: a decision moves the state on.
After a guard's breach no follow-up is sent: the phase ends with the breach's verdict.
"""

from __future__ import annotations

from typing import Any

from core import _termination_text as words
from core._prompt_watch import CheckPrompt, PromptWatch, Resend
from core._termination_rules import TURN_STATES, State, Trigger, next_state
from core._termination_types import (
    ABORT_GRACE,
    EXIT_CODES,
    INTERRUPT_GRACE,
    Abort,
    Attempt,
    Conclude,
    Limits,
    RunChecks,
    SendPrompt,
    classify,
)
from core.guards import Breach, Guards
from core.tracker import (
    MessageUpdated,
    PartFinalized,
    Passthrough,
    SessionError,
    SessionIdle,
    StatusChanged,
)

__all__ = [
    "ABORT_GRACE",
    "EXIT_CODES",
    "INTERRUPT_GRACE",
    "Abort",
    "Attempt",
    "CheckPrompt",
    "Conclude",
    "Limits",
    "Policy",
    "Resend",
    "RunChecks",
    "SendPrompt",
    "State",
    "Trigger",
    "classify",
]


class Policy:
    """One phase's termination state machine (see the module docstring)."""

    def __init__(self, limits: Limits, *, prompt: str, session_id: str, now: float) -> None:
        self.limits = limits
        self.prompt = prompt
        self.session_id = session_id
        self.started_at = now
        self.state = State.STARTING
        self.attempts: list[Attempt] = []
        self.rejected_permissions: list[dict[str, Any]] = []
        self.conclusion: Conclude | None = None
        self._answered: set[str] = set()
        self._resumes = 0
        self._repairs = 0
        self._last_progress = now
        self._pending: Abort | None = None
        self._give_up_at = 0.0  # when an abort concludes without waiting for the idle
        self._prompting_at_abort = False  # the abort came while a prompt was being sent
        self.guards = Guards(limits.guards)
        self.prompt_watch = PromptWatch()
        self.breach: Breach | None = None  # the first budget spent or loop seen

    # -- inputs ----------------------------------------------------------------------------------

    def start(self, now: float) -> list[Any]:
        """The stream is connected: send the initial prompt."""
        return self._follow_up(Trigger.START, "initial", self.prompt, None, now)

    def baseline_taken(self, baseline: str | None, now: float) -> list[Any]:
        """The attempt's baseline is known and its prompt is about to be posted."""
        if self._fire(Trigger.POSTED):
            self.attempts[-1].baseline = baseline
            self.prompt_watch.posted(self.attempts[-1].number, now)
            self._last_progress = now
        return []

    def prompt_failed(self, reason: str, now: float) -> list[Any]:
        """The prompt could not be delivered."""
        return self._conclude("failed", f"could not send the prompt: {reason}", now)

    def observe(self, effects: tuple[Any, ...], now: float) -> list[Any]:
        """Tracked effects of the session tree, in order."""
        out: list[Any] = []
        for effect in effects:
            self._last_progress = now
            out.extend(self._observe_one(effect, now))
            if (breach := self.guards.observe(effect)) is not None and self.breach is None:
                self.breach = breach  # no follow-up prompt after this (`_follow_up`)
                out.extend(self._abort(Trigger.GUARD, breach.verdict, breach.reason, now))
        return out

    def permission_answered(self, *, request_id: str, reply: str, **fields: Any) -> None:
        """The responder (it alone decides) answered a request (`fields`: permission, patterns,
        session_id); a rejection counts once against a graceful finish. It may report a request
        more than once (at decision time, and after the reply failed): its id is what counts."""
        if request_id in self._answered:
            return
        self._answered.add(request_id)
        if reply == "reject":
            patterns = list(fields.pop("patterns", ()))
            record = {"reply": reply, **fields, "patterns": patterns, "request_id": request_id}
            self.rejected_permissions.append(record)

    def tick(self, now: float) -> list[Any]:
        """Time passed: abort grace, phase timeout, stall."""
        if self._can(Trigger.ABORT_ENDED):
            return self._abort_finished(now) if now >= self._give_up_at else []
        if now - self.started_at >= self.limits.phase_timeout:
            limit = words.describe_duration(self.limits.phase_timeout)
            return self._abort(
                Trigger.TIMEOUT, "timed_out", f"phase timeout of {limit} reached", now
            )
        if now - self._last_progress >= self.limits.stall_timeout:
            limit = words.describe_duration(self.limits.stall_timeout)
            return self._abort(Trigger.STALL, "stalled", f"no progress for {limit}", now)
        check = self.prompt_watch.due(now) if self.state is State.RUNNING else None
        return [check] if check is not None else []

    def prompt_checked(self, started: bool, now: float) -> list[Any]:
        """What `CheckPrompt` found: did the turn start? A `Resend` once if not."""
        resend = self.prompt_watch.checked(started, now) if self.state is State.RUNNING else None
        return [resend] if resend is not None else []

    def checks_done(
        self, failures: tuple[tuple[str, str], ...], *, repairable: bool, now: float
    ) -> list[Any]:
        """The `done` checks finished: `failures` are (kind, detail) pairs."""
        if not self._can(Trigger.FOLLOW_UP):  # not CHECKING: a stale outcome
            return []
        passed, finish = not failures, classify(self.attempts[-1].finish)
        if passed and finish == "ok":
            return self._conclude("done", self._finish_text() + "; done checks passed", now)
        if passed and finish == "cut" and not self.rejected_permissions:
            reason = self._finish_text() + ", but the done checks passed"
            return self._conclude("done_gracefully", reason, now)
        details = tuple(detail for _, detail in failures)
        if finish == "ok" and not passed and repairable:
            return self._repair(details, now)
        return self._resume(details, now)

    def abort_done(self, interrupted: bool, now: float) -> list[Any]:
        """The server answered the abort: `interrupted` False means nothing was running
        (opencode 2.x says so, and then sends no event), so the abort ends now instead of
        after its grace; not when the abort came while a prompt was still being sent (its
        run may start after the answer)."""
        if not interrupted and not self._prompting_at_abort and self._can(Trigger.ABORT_ENDED):
            return self._abort_finished(now)
        return []

    def external_failure(self, verdict: str, reason: str, now: float) -> list[Any]:
        """Server death, a lost stream or an interrupt ends the phase (an interrupt aborts)."""
        if verdict == "interrupted" and self._can(Trigger.INTERRUPT):
            return self._abort(Trigger.INTERRUPT, verdict, reason, now)
        return self._conclude(verdict, reason, now)

    def summary(self) -> dict[str, Any]:
        """The attempts so far and the rejected permissions (for the result, whatever ends it)."""
        attempts = [attempt.as_dict() for attempt in self.attempts]
        rejected, spend = list(self.rejected_permissions), self.guards.totals()
        structured = self.attempts[-1].structured if self.attempts else None  # the last word
        summary = {"attempts": attempts, "rejected_permissions": rejected, "spend": spend}
        return {**summary, "structured": structured}

    # -- transitions -----------------------------------------------------------------------------

    def _fire(self, trigger: Trigger) -> bool:
        """Move by the table; False (and no move) when `trigger` is not legal here."""
        target = next_state(self.state, trigger)
        if target is not None:
            self.state = target
        return target is not None

    def _observe_one(self, effect: Any, now: float) -> list[Any]:
        if isinstance(effect, PartFinalized) and effect.part_type == "step-finish":
            # A step of the session tree (a subagent's too) belongs to the attempt under way:
            # the attempts' figures sum to what the spend budgets count.
            if self.attempts and self.attempts[-1].newer(effect.part.get("messageID")):
                self.attempts[-1].count_step(effect.part)
            return []
        if getattr(effect, "session_id", None) != self.session_id:
            return []
        if isinstance(effect, StatusChanged) and effect.status.get("type") in ("busy", "retry"):
            self.prompt_watch.saw_start()
        match effect:
            case StatusChanged(status=status) if status.get("type") == "retry":
                return self._on_retry(status, now)
            case MessageUpdated(info=info) if info.get("role") == "assistant":
                self._on_assistant(info)
            case SessionError(error=error) if (attempt := self._current()) is not None:
                attempt.last_error = error
                # An error shows life only while the attempt can still end by an idle.
                attempt.alive = attempt.alive or self._can(Trigger.ATTEMPT_ENDED)
            case SessionIdle():
                return self._on_idle(now)
            case Passthrough(event_type="session.compacted") if self.attempts:
                self.attempts[-1].compactions += 1
        return []

    def _on_retry(self, status: dict[str, Any], now: float) -> list[Any]:
        attempt = self._current()
        # Retries count against the running attempt only: that is where they may abort it.
        if attempt is None or not self._can(Trigger.RETRIES_SPENT):
            return []
        attempt.retries = max(attempt.retries + 1, int(status.get("attempt", 0) or 0))
        if attempt.retries > self.limits.provider_retries:
            message = status.get("message", "unknown error")
            reason = words.retries_text(attempt.retries, self.limits.provider_retries, message)
            return self._abort(Trigger.RETRIES_SPENT, "failed", reason, now)
        return []

    def _on_assistant(self, info: dict[str, Any]) -> None:
        attempt = self._current()
        if attempt is not None and self.state in TURN_STATES and attempt.newer(info.get("id")):
            attempt.alive = True
            attempt.latest = info
            self.prompt_watch.saw_start()

    def _on_idle(self, now: float) -> list[Any]:
        if self._can(Trigger.ABORT_ENDED):
            return self._abort_finished(now)
        attempt = self._current()
        if attempt is None or not attempt.alive or not self._can(Trigger.ATTEMPT_ENDED):
            return []
        if attempt.end(now, structured=self.limits.structured):
            return self._conclude("failed", f"provider error: {attempt.error}", now)
        self._fire(Trigger.ATTEMPT_ENDED)
        return [RunChecks(structured=attempt.structured)]

    def _resume(self, details: tuple[str, ...], now: float) -> list[Any]:
        if self._resumes >= self.limits.resumes:
            reason = f"{self._finish_text()}; {self._resumes} resume(s) spent"
            return self._conclude("incomplete", words.with_details(reason, details), now)
        self._resumes += 1
        text = words.resume_prompt(self.attempts[-1].finish, self._steps(), details)
        return self._follow_up(Trigger.FOLLOW_UP, "resume", text, self._finish_text(), now)

    def _repair(self, details: tuple[str, ...], now: float) -> list[Any]:
        if self._repairs >= self.limits.repairs:
            reason = f"done checks still failing after {self._repairs} repair(s)"
            return self._conclude("incomplete", words.with_details(reason, details), now)
        self._repairs += 1
        text = words.repair_prompt(details)
        return self._follow_up(Trigger.FOLLOW_UP, "repair", text, "done checks failed", now)

    def _follow_up(
        self, trigger: Trigger, kind: str, text: str, reason: str | None, now: float
    ) -> list[Any]:
        if self.breach is not None and trigger is Trigger.FOLLOW_UP:  # spent: no more turns
            return self._conclude(self.breach.verdict, self.breach.reason, now)
        if not self._fire(trigger):
            return []
        number = len(self.attempts) + 1
        self.attempts.append(Attempt(number=number, kind=kind, started_at=now))
        return [SendPrompt(number=number, kind=kind, text=text, reason=reason)]

    def _abort(self, trigger: Trigger, verdict: str, reason: str, now: float) -> list[Any]:
        prompting = self.state is State.PROMPTING
        if not self._fire(trigger):
            return []
        self._prompting_at_abort = prompting
        self._pending = Abort(verdict=verdict, reason=reason)
        # Ctrl-C is a person waiting: conclude soon even if opencode never goes idle.
        self._give_up_at = now + (INTERRUPT_GRACE if trigger is Trigger.INTERRUPT else ABORT_GRACE)
        return [self._pending]

    def _abort_finished(self, now: float) -> list[Any]:
        pending = self._pending or Abort(verdict="failed", reason="aborted")
        return self._conclude(pending.verdict, pending.reason, now, Trigger.ABORT_ENDED)

    def _conclude(
        self, verdict: str, reason: str, now: float, trigger: Trigger = Trigger.CONCLUDE
    ) -> list[Any]:
        if not self._fire(trigger):
            return []
        current = self._current()
        if current is not None and current.ended_at is None:
            current.ended_at = now
        self.conclusion = Conclude(verdict=verdict, reason=reason)
        return [self.conclusion]

    # -- helpers ---------------------------------------------------------------------------------

    def _current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def _can(self, trigger: Trigger) -> bool:
        return next_state(self.state, trigger) is not None

    def _steps(self) -> int:
        return sum(attempt.steps for attempt in self.attempts)

    def _finish_text(self) -> str:
        return words.finish_text(self.attempts[-1].finish if self.attempts else None, self._steps())
