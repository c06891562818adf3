"""The termination policy: when is a phase really finished, and what happens when it is not.

Theory of operation. The policy is a state machine fed with tracked effects, clock ticks and
the outcomes of the IO it asked for; it returns effects (values) the termination actor
performs. States:

  STARTING --start--> PROMPTING --baseline_taken--> RUNNING --idle--> CHECKING --checks_done-->
      DONE (verdict) | PROMPTING (resume / repair)
  any live state --timeout, stall, retries over budget, interrupt--> ABORTING --idle/grace--> DONE

An idle ends an attempt only after the attempt showed life (an assistant message newer than
its baseline, or a session error): opencode repeats idles after errors and aborts,
and those stale repeats must not end the next attempt. At the attempt's end the finish
reason of the latest assistant message is classified (`ok`, `cut`, `failure`), the `done`
checks run, and the verdict table of SPEC §5 applies: ok + checks pass is `done`; cut + checks
pass with no permission rejected is `done_gracefully`; a provider error is `failed`; otherwise
a repair (ok finish, only front-matter/command failures) or a resume, each within its budget,
else `incomplete`. Every follow-up is decided once per attempt: a decision moves the state on.
"""

from __future__ import annotations

from typing import Any

from core._termination_text import describe_duration, repair_prompt, resume_prompt
from core._termination_types import (
    ABORT_GRACE,
    EXIT_CODES,
    FAILURE_ERRORS,
    Abort,
    Attempt,
    Conclude,
    FinishClass,
    Limits,
    RunChecks,
    SendPrompt,
    classify,
)
from core.permissions import PermissionPolicy, decide, describe
from core.tracker import (
    MessageUpdated,
    PartFinalized,
    PermissionAsked,
    SessionError,
    SessionIdle,
    StatusChanged,
)

__all__ = [
    "EXIT_CODES",
    "Abort",
    "Attempt",
    "Conclude",
    "Limits",
    "Policy",
    "RunChecks",
    "SendPrompt",
    "classify",
]


class Policy:
    """One phase's termination state machine (see the module docstring)."""

    def __init__(
        self,
        limits: Limits,
        *,
        prompt: str,
        session_id: str,
        now: float,
        permissions: PermissionPolicy | None = None,
    ) -> None:
        self.limits = limits
        self.permissions = permissions or PermissionPolicy()
        self.prompt = prompt
        self.session_id = session_id
        self.started_at = now
        self.state = "STARTING"
        self.attempts: list[Attempt] = []
        self.rejected_permissions: list[dict[str, Any]] = []
        self.conclusion: Conclude | None = None
        self._resumes = 0
        self._repairs = 0
        self._last_progress = now
        self._alive = False
        self._latest: dict[str, Any] | None = None
        self._error: dict[str, Any] | None = None
        self._class: FinishClass = "cut"
        self._pending: Abort | None = None
        self._abort_at = 0.0

    # -- inputs ----------------------------------------------------------------------------------

    def start(self, now: float) -> list[Any]:
        """The stream is connected: send the initial prompt."""
        if self.state != "STARTING":
            return []
        return self._follow_up("initial", self.prompt, None, now)

    def baseline_taken(self, baseline: str | None, now: float) -> list[Any]:
        """The attempt's baseline is known and its prompt is about to be posted."""
        if self.state == "PROMPTING":
            self.state = "RUNNING"
            self.attempts[-1].baseline = baseline
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
        return out

    def note_permission(self, record: dict[str, Any]) -> None:
        """A permission was answered; rejections count against a graceful finish."""
        if record.get("reply") == "reject":
            self.rejected_permissions.append(record)

    def _on_permission(self, effect: PermissionAsked) -> None:
        """Decide as the responder will, at once: the rejection counts before the idle does."""
        decision = decide(self.permissions, effect.request)
        name, patterns = describe(effect.request)
        record = {
            "reply": decision.reply,
            "permission": name,
            "patterns": list(patterns),
            "session_id": effect.session_id,
            "request_id": effect.request.get("id"),
        }
        self.note_permission(record)

    def tick(self, now: float) -> list[Any]:
        """Time passed: phase timeout, stall, abort grace."""
        if self.state == "DONE":
            return []
        if self.state == "ABORTING":
            return self._abort_finished(now) if now - self._abort_at >= ABORT_GRACE else []
        if now - self.started_at >= self.limits.phase_timeout:
            limit = describe_duration(self.limits.phase_timeout)
            return self._abort("timed_out", f"phase timeout of {limit} reached", now)
        stalled_for = now - self._last_progress
        if self.state in ("RUNNING", "PROMPTING") and stalled_for >= self.limits.stall_timeout:
            limit = describe_duration(self.limits.stall_timeout)
            return self._abort("stalled", f"no progress for {limit}", now)
        return []

    def checks_done(
        self, failures: tuple[tuple[str, str], ...], *, repairable: bool, now: float
    ) -> list[Any]:
        """The `done` checks finished: `failures` are (kind, detail) pairs."""
        if self.state != "CHECKING":
            return []
        passed = not failures
        if passed and self._class == "ok":
            return self._conclude("done", self._finish_text() + "; done checks passed", now)
        if passed and self._class == "cut" and not self.rejected_permissions:
            reason = self._finish_text() + ", but the done checks passed"
            return self._conclude("done_gracefully", reason, now)
        details = tuple(detail for _, detail in failures)
        if self._class == "ok" and not passed and repairable:
            return self._repair(details, now)
        return self._resume(details, now)

    def external_failure(self, verdict: str, reason: str, now: float) -> list[Any]:
        """Server death, a lost stream or an interrupt ends the phase at once."""
        if self.state == "DONE":
            return []
        if verdict == "interrupted" and self.state in ("RUNNING", "PROMPTING", "CHECKING"):
            return self._abort(verdict, reason, now)
        return self._conclude(verdict, reason, now)

    # -- transitions -----------------------------------------------------------------------------

    def _observe_one(self, effect: Any, now: float) -> list[Any]:
        if isinstance(effect, PermissionAsked):  # anywhere in the tree, subagents included
            self._on_permission(effect)
            return []
        if getattr(effect, "session_id", None) != self.session_id:
            return []
        match effect:
            case StatusChanged(status=status) if status.get("type") == "retry":
                return self._on_retry(status, now)
            case MessageUpdated(info=info) if self._is_new_assistant(info):
                self._alive = True
                self._latest = info
            case PartFinalized(part_type="step-finish", part=part) if self._is_new(part):
                self._count_step(part)
            case SessionError(error=error):
                self._error = error
                self._alive = self._alive or self.state == "RUNNING"
            case SessionIdle():
                return self._on_idle(now)
        return []

    def _on_retry(self, status: dict[str, Any], now: float) -> list[Any]:
        attempt = self._current()
        if attempt is None or self.state != "RUNNING":
            return []
        attempt.retries = max(attempt.retries + 1, int(status.get("attempt", 0) or 0))
        if attempt.retries > self.limits.provider_retries:
            reason = (
                f"provider retried {attempt.retries} times (budget "
                f"{self.limits.provider_retries}): {status.get('message', 'unknown error')}"
            )
            return self._abort("failed", reason, now)
        return []

    def _on_idle(self, now: float) -> list[Any]:
        if self.state == "ABORTING":
            return self._abort_finished(now)
        if self.state != "RUNNING" or not self._alive:
            return []
        attempt = self.attempts[-1]
        attempt.ended_at = now
        attempt.finish = (self._latest or {}).get("finish")
        error = self._error or (self._latest or {}).get("error")
        name = error.get("name") if error else None
        if name in FAILURE_ERRORS:  # the model ran out of room or was filtered: resume
            attempt.finish = attempt.finish or FAILURE_ERRORS[name]
            attempt.error = _describe_error(error)
        elif error and name != "MessageAbortedError":
            attempt.error = _describe_error(error)
            return self._conclude("failed", f"provider error: {attempt.error}", now)
        self._class = classify(attempt.finish)
        self.state = "CHECKING"
        return [RunChecks()]

    def _resume(self, details: tuple[str, ...], now: float) -> list[Any]:
        if self._resumes >= self.limits.resumes:
            reason = f"{self._finish_text()}; {self._resumes} resume(s) spent"
            return self._conclude("incomplete", _with_details(reason, details), now)
        self._resumes += 1
        attempt = self.attempts[-1]
        text = resume_prompt(attempt.finish, self._steps(), details)
        return self._follow_up("resume", text, self._finish_text(), now)

    def _repair(self, details: tuple[str, ...], now: float) -> list[Any]:
        if self._repairs >= self.limits.repairs:
            reason = f"done checks still failing after {self._repairs} repair(s)"
            return self._conclude("incomplete", _with_details(reason, details), now)
        self._repairs += 1
        return self._follow_up("repair", repair_prompt(details), "done checks failed", now)

    def _follow_up(self, kind: str, text: str, reason: str | None, now: float) -> list[Any]:
        number = len(self.attempts) + 1
        self.attempts.append(Attempt(number=number, kind=kind, started_at=now))
        self.state = "PROMPTING"
        self._alive = False
        self._latest = None
        self._error = None
        return [SendPrompt(number=number, kind=kind, text=text, reason=reason)]

    def _abort(self, verdict: str, reason: str, now: float) -> list[Any]:
        if self.state in ("ABORTING", "DONE"):
            return []
        self._pending = Abort(verdict=verdict, reason=reason)
        self.state = "ABORTING"
        self._abort_at = now
        return [self._pending]

    def _abort_finished(self, now: float) -> list[Any]:
        pending = self._pending or Abort(verdict="failed", reason="aborted")
        return self._conclude(pending.verdict, pending.reason, now)

    def _conclude(self, verdict: str, reason: str, now: float) -> list[Any]:
        if self.state == "DONE":
            return []
        self.state = "DONE"
        current = self._current()
        if current is not None and current.ended_at is None:
            current.ended_at = now
        self.conclusion = Conclude(verdict=verdict, reason=reason)
        return [self.conclusion]

    # -- helpers ---------------------------------------------------------------------------------

    def _current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def _is_new(self, part: dict[str, Any]) -> bool:
        attempt = self._current()
        baseline = attempt.baseline if attempt else None
        return baseline is None or str(part.get("messageID", "")) > baseline

    def _is_new_assistant(self, info: dict[str, Any]) -> bool:
        if info.get("role") != "assistant" or self.state not in ("RUNNING", "ABORTING"):
            return False
        attempt = self._current()
        baseline = attempt.baseline if attempt else None
        return baseline is None or str(info.get("id", "")) > baseline

    def _count_step(self, part: dict[str, Any]) -> None:
        attempt = self._current()
        if attempt is None:
            return
        attempt.steps += 1
        attempt.cost += float(part.get("cost") or 0)
        tokens = part.get("tokens") or {}
        for key in ("input", "output", "reasoning"):
            attempt.tokens[key] = attempt.tokens.get(key, 0) + int(tokens.get(key) or 0)
        cache = tokens.get("cache") or {}
        for key in ("read", "write"):
            name = f"cache_{key}"
            attempt.tokens[name] = attempt.tokens.get(name, 0) + int(cache.get(key) or 0)

    def _steps(self) -> int:
        return sum(attempt.steps for attempt in self.attempts)

    def _finish_text(self) -> str:
        finish = self.attempts[-1].finish if self.attempts else None
        return f"finish reason {finish or 'none'} after {self._steps()} step(s)"


def _describe_error(error: dict[str, Any]) -> str:
    data = error.get("data") or {}
    message = data.get("message") or error.get("message") or ""
    status = data.get("statusCode")
    name = error.get("name", "Error")
    where = f" (HTTP {status})" if status else ""
    return f"{name}{where}: {message}".rstrip(": ")


def _with_details(reason: str, details: tuple[str, ...]) -> str:
    return reason + ("; " + "; ".join(d.splitlines()[0] for d in details) if details else "")
