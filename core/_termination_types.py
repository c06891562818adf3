"""Values of the termination policy: finish classes, limits, the effects it returns, attempts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from core._termination_text import describe_error
from core.guards import GuardLimits

FinishClass = Literal["ok", "cut", "failure"]
# `structured`: the turn ended by calling opencode's StructuredOutput tool (`output_schema`).
OK_FINISHES = frozenset({"stop", "end_turn", "structured"})
FAILURE_FINISHES = frozenset({"length", "max_tokens", "content-filter", "content_filter", "error"})
EXIT_CODES = {
    "done": 0,
    "done_gracefully": 0,
    "failed": 1,
    "incomplete": 2,
    "timed_out": 2,
    "stalled": 2,
    "interrupted": 130,
}
ABORT_GRACE = 10.0
# Ctrl-C must end the phase within about a second whatever opencode does with the abort.
INTERRUPT_GRACE = 0.5
# opencode records these finishes as message errors; they are the `failure` class, not a
# provider failure: the checks run and a resume follows.
FAILURE_ERRORS = {"MessageOutputLengthError": "length", "ContentFilterError": "content-filter"}


def classify(finish: str | None) -> FinishClass:
    """`stop`/`end_turn` ok; `length`/`content-filter`/`error` failure; the rest cut off."""
    if finish in OK_FINISHES:
        return "ok"
    if finish in FAILURE_FINISHES:
        return "failure"
    return "cut"


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Budgets and timeouts of one phase (seconds)."""

    resumes: int = 3
    repairs: int = 2
    provider_retries: int = 8
    phase_timeout: float = 3600.0
    stall_timeout: float = 600.0
    guards: GuardLimits = field(default_factory=GuardLimits)
    structured: bool = False  # the phase asks for a structured result (`output_schema`)


@dataclass(frozen=True, slots=True, kw_only=True)
class SendPrompt:
    """Send attempt `number`'s prompt once the session is idle."""

    number: int
    kind: str
    text: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunChecks:
    """Run the phase's `done` checks (`structured`: the attempt's structured result, if any)."""

    structured: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Abort:
    """Abort the session; the verdict follows when it is idle (or after a grace period)."""

    verdict: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Conclude:
    """The phase is over."""

    verdict: str
    reason: str

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for this verdict."""
        return EXIT_CODES[self.verdict]


@dataclass(slots=True)
class Attempt:
    """What one prompt and its turn(s) produced."""

    number: int
    kind: str
    started_at: float
    ended_at: float | None = None
    finish: str | None = None
    steps: int = 0
    tokens: dict[str, int] = field(default_factory=dict)
    cost: float = 0.0
    retries: int = 0
    compactions: int = 0
    error: str | None = None
    baseline: str | None = None
    # What the turn showed so far: only an attempt that showed life is ended by an idle.
    alive: bool = False
    latest: dict[str, Any] | None = None
    last_error: dict[str, Any] | None = None
    structured: Any = None  # the structured result of the attempt's last message (output_schema)

    def newer(self, message_id: Any) -> bool:
        """Is the message newer than the attempt's baseline (not history)?"""
        return self.baseline is None or str(message_id or "") > self.baseline

    def end(self, now: float, *, structured: bool = True) -> bool:
        """Close the attempt on its last message; True when a provider error failed it.
        `structured`: the phase asks for a structured result (else a message's is not kept)."""
        latest = self.latest or {}
        self.ended_at = now
        self.finish = latest.get("finish")
        self.structured = latest.get("structured") if structured else None
        if self.structured is not None and self.finish == "tool-calls":
            self.finish = "structured"
        error = self.last_error or latest.get("error")
        name = error.get("name") if error else None
        if name == "StructuredOutputError":  # no structured result: the checks say so, a repair
            self.finish, self.error = "structured", describe_error(error)
        elif name in FAILURE_ERRORS:  # the model ran out of room or was filtered: resume
            self.finish = self.finish or FAILURE_ERRORS[name]
            self.error = describe_error(error)
        elif error and name != "MessageAbortedError":  # an abort of ours is no provider error
            self.error = describe_error(error)
            return True
        return False

    def count_step(self, part: dict[str, Any]) -> None:
        """Add a finished step's tokens and cost."""
        self.steps += 1
        self.cost += float(part.get("cost") or 0)
        tokens = part.get("tokens") or {}
        for key in ("input", "output", "reasoning"):
            self.tokens[key] = self.tokens.get(key, 0) + int(tokens.get(key) or 0)
        cache = tokens.get("cache") or {}
        for key in ("read", "write"):
            name = f"cache_{key}"
            self.tokens[name] = self.tokens.get(name, 0) + int(cache.get(key) or 0)

    def as_dict(self) -> dict[str, Any]:
        """The attempt as the result JSON shows it."""
        return {
            "number": self.number,
            "kind": self.kind,
            "finish": self.finish,
            "steps": self.steps,
            "tokens": dict(self.tokens),
            "cost": round(self.cost, 6),
            "retries": self.retries,
            "compactions": self.compactions,
            "error": self.error,
            "duration": round((self.ended_at or self.started_at) - self.started_at, 3),
        }
