"""The live status line of the rich view: what the phase is doing now, and its running totals
(pure).

`LiveStatus` is fed what the renderer receives (tracked effects with their raw events, and
the runner's records, by name) and `line(now_ms)` says, for the bottom of the terminal:

    ● running bash · 1m 12s · attempt 2 · 5 steps · 48,210 tokens · $0.0312

The state is the latest of: waiting for the model (a prompt went out, a step or a tool
ended), thinking (reasoning streams), writing (text streams), running a named tool (its part
turned `running`), retrying in N s (a provider retry, counted down), waiting for a permission
answer, and the verdict at the end. Steps, tokens and cost sum every step of the session tree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core._termination_text import describe_duration
from core.guards import step_tokens
from core.tracker import PartDelta, PartFinalized, PermissionAsked, StatusChanged

__all__ = ["LiveStatus"]

_WAITING = "waiting for the model"


class LiveStatus:
    """The status line's state (see the module docstring)."""

    def __init__(self, started_ms: int) -> None:
        self.started_ms = started_ms
        self.state = "starting"
        self.attempt = 0
        self.steps = 0
        self.tokens = 0
        self.cost = 0.0
        self._retry_at: float | None = None  # epoch ms of the next provider retry
        self._ended_ms: int | None = None  # the clock stops at the verdict

    def observe(self, effects: Iterable[Any], raw: Iterable[dict[str, Any]] = ()) -> None:
        """A tracked batch: its effects, and its raw events (a tool's `running` has no effect)."""
        for event in raw:
            if event.get("type") == "message.part.updated":
                self._on_part(event.get("properties", {}).get("part"))
        for effect in effects:
            self._on_effect(effect)

    def attempt_started(self, number: int) -> None:
        """A prompt went out."""
        self.attempt = number
        self.state = _WAITING
        self._retry_at = None

    def permission_answered(self) -> None:
        """The runner answered a permission request."""
        self.state = _WAITING

    def finished(self, verdict: str, now_ms: int | None = None) -> None:
        """The verdict is out (at `now_ms`: the elapsed time stops there)."""
        self.state = f"verdict: {verdict}"
        self._retry_at = None
        self._ended_ms = now_ms

    def line(self, now_ms: int) -> str:
        """The status line at `now_ms`."""
        shown = self.fields(now_ms)
        figures = [shown["state"], shown["elapsed"]]
        if self.attempt:
            figures.append(f"attempt {self.attempt}")
        steps = f"{self.steps} step" + ("s" if self.steps != 1 else "")
        figures += [steps, f"{shown['tokens']} tokens", shown["cost"]]
        return "● " + " · ".join(figures)

    def fields(self, now_ms: int) -> dict[str, str]:
        """The figures one by one, as text (a row of the `--parallel` table)."""
        state = self.state
        if self._retry_at is not None:
            left = max(0.0, self._retry_at - now_ms)
            state = f"retrying in {left / 1000:.0f}s" if left >= 1000 else "retrying now"
        return {
            "state": state,
            "elapsed": _elapsed(self.started_ms, self._ended_ms or now_ms),
            "attempt": str(self.attempt or ""),
            "steps": str(self.steps),
            "tokens": f"{self.tokens:,}",
            "cost": f"${self.cost:.4f}",
        }

    def snapshot(self, now_ms: int) -> dict[str, Any]:
        """The state as plain data, its times relative to `now_ms` (for another process's
        table: `restore` there)."""
        retry = None if self._retry_at is None else self._retry_at - now_ms
        figures = {"state": self.state, "attempt": self.attempt, "steps": self.steps}
        return {
            **figures,
            "tokens": self.tokens,
            "cost": self.cost,
            "retry_in": retry,
            "ended": self._ended_ms is not None,
        }

    def restore(self, snapshot: dict[str, Any], now_ms: int) -> None:
        """Take another status's `snapshot` (its clock stops when that one's did)."""
        self.state = snapshot["state"]
        self.attempt = snapshot["attempt"]
        self.steps = snapshot["steps"]
        self.tokens = snapshot["tokens"]
        self.cost = snapshot["cost"]
        retry = snapshot["retry_in"]
        self._retry_at = None if retry is None else now_ms + retry
        if snapshot["ended"] and self._ended_ms is None:
            self._ended_ms = now_ms

    def _on_part(self, part: Any) -> None:
        if not isinstance(part, dict) or part.get("type") != "tool":
            return
        state = part.get("state") if isinstance(part.get("state"), dict) else {}
        if state.get("status") == "running":
            self.state = f"running {part.get('tool', 'a tool')}"
            self._retry_at = None

    def _on_effect(self, effect: Any) -> None:
        if isinstance(effect, PartDelta):
            writing = effect.part_type != "reasoning"
            self.state = "writing" if writing else "thinking"
            self._retry_at = None
        elif isinstance(effect, PartFinalized):
            if effect.part_type == "step-finish":
                self._count_step(effect.part)
            if effect.part_type in ("step-finish", "tool"):
                self.state = _WAITING
        elif isinstance(effect, StatusChanged):
            kind = effect.status.get("type")
            next_at = effect.status.get("next")
            if kind == "retry" and isinstance(next_at, int | float):
                self._retry_at = float(next_at)
            elif kind == "busy":
                self._retry_at = None
        elif isinstance(effect, PermissionAsked):
            self.state = "waiting for a permission answer"

    def _count_step(self, part: dict[str, Any]) -> None:
        self.steps += 1
        self.tokens += step_tokens(part.get("tokens"))
        cost = part.get("cost")
        self.cost += float(cost) if isinstance(cost, int | float) else 0.0


def _elapsed(start_ms: int, now_ms: int) -> str:
    return describe_duration(max(0, now_ms - start_ms) // 1000)
