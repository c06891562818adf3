"""The phase result: what the run decided and why, for the embedding API and the JSON file."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

VERDICTS = (
    "done",
    "done_gracefully",
    "incomplete",
    "failed",
    "timed_out",
    "stalled",
    "interrupted",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseResult:
    """The verdict of one phase with everything needed to trust it."""

    phase: str
    verdict: str
    reason: str
    exit_code: int
    session_id: str | None = None
    attempts: tuple[dict[str, Any], ...] = ()
    rejected_permissions: tuple[dict[str, Any], ...] = ()
    reconnects: int = 0
    resyncs: int = 0
    started_at: float = 0.0
    duration: float = 0.0
    server_version: str | None = None
    server_url: str | None = None
    transcript: str | None = None
    result_path: str | None = None
    server_log: str | None = None
    server_log_tail: tuple[str, ...] = ()
    totals: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True for `done` and `done_gracefully`."""
        return self.exit_code == 0

    def to_dict(self) -> dict[str, Any]:
        """The result JSON document."""
        data = dataclasses.asdict(self)
        data["attempts"] = list(self.attempts)
        data["rejected_permissions"] = list(self.rejected_permissions)
        data["server_log_tail"] = list(self.server_log_tail)
        data["result"] = data.pop("result_path")
        return data


def totals_of(attempts: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """Steps, tokens, cost and retries summed over the attempts."""
    tokens: dict[str, int] = {}
    for attempt in attempts:
        for key, value in attempt.get("tokens", {}).items():
            tokens[key] = tokens.get(key, 0) + int(value)
    return {
        "attempts": len(attempts),
        "steps": sum(a.get("steps", 0) for a in attempts),
        "tokens": tokens,
        "cost": round(sum(a.get("cost", 0.0) for a in attempts), 6),
        "retries": sum(a.get("retries", 0) for a in attempts),
    }


def write_result(result: PhaseResult) -> None:
    """Write the result JSON atomically (a reader never sees half a file)."""
    if not result.result_path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(result.result_path)), exist_ok=True)
    partial = result.result_path + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(result.to_dict(), handle, indent=2, default=str)
        handle.write("\n")
    os.replace(partial, result.result_path)
