"""The phase result: what the run decided and why, for the embedding API and the JSON file."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from core.termination import EXIT_CODES

VERDICTS = (
    "done",
    "done_gracefully",
    "incomplete",
    "failed",
    "timed_out",
    "stalled",
    "interrupted",
)


@dataclass(slots=True, kw_only=True)
class RunFacts:
    """What the supervisor learnt on the way, besides the verdict."""

    phase: str
    transcript: str | None
    result_path: str | None
    server_log: str | None = None
    started_at: float = 0.0
    duration: float = 0.0
    session_id: str | None = None
    server_version: str | None = None
    server_url: str | None = None
    server_pid: int | None = None  # None when attached
    server_origin: str | None = None  # a leased server's: the pool daemon's
    server_capabilities: dict[str, Any] | None = None
    server_log_tail: tuple[str, ...] = ()
    reconnects: int = 0
    resyncs: int = 0
    interrupted_exit: int = EXIT_CODES["interrupted"]  # by the signal that interrupted it
    refused_exit: int | None = None  # a phase refused before its prompt (64)
    permission_rules: tuple[dict[str, str], ...] = ()  # what the session was created with


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
    permission_rules: tuple[dict[str, str], ...] = ()  # the session's, as the server kept them
    reconnects: int = 0
    resyncs: int = 0
    started_at: float = 0.0
    duration: float = 0.0
    server_version: str | None = None
    server_url: str | None = None
    server_pid: int | None = None  # the server it ran on (None: attached), with `server_url`
    server_origin: str | None = None  # "warm from the runner pool ..." when leased
    server_capabilities: dict[str, Any] | None = None
    transcript: str | None = None
    result_path: str | None = None
    server_log: str | None = None
    server_log_tail: tuple[str, ...] = ()
    totals: dict[str, Any] = field(default_factory=dict)
    spend: dict[str, Any] = field(default_factory=dict)  # the whole session tree's (budgets)
    structured: Any = None  # the last structured result (`output_schema`), valid or not
    executor: dict[str, Any] | None = None  # a remote executor's: the node, the nodes lost

    @property
    def ok(self) -> bool:
        """True for `done` and `done_gracefully`."""
        return self.exit_code == 0

    @classmethod
    def from_verdict(cls, concluded: Any, facts: RunFacts) -> PhaseResult:
        """The result of a phase that ended with `concluded` (a `Concluded`)."""
        attempts = tuple(concluded.summary.get("attempts", ()))
        if concluded.verdict == "interrupted":
            exit_code = facts.interrupted_exit
        elif facts.refused_exit is not None:
            exit_code = facts.refused_exit
        else:
            exit_code = EXIT_CODES.get(concluded.verdict, concluded.exit_code)
        return cls(
            phase=facts.phase,
            verdict=concluded.verdict,
            reason=concluded.reason,
            exit_code=exit_code,
            session_id=facts.session_id,
            attempts=attempts,
            rejected_permissions=tuple(concluded.summary.get("rejected_permissions", ())),
            permission_rules=facts.permission_rules,
            reconnects=facts.reconnects,
            resyncs=facts.resyncs,
            started_at=facts.started_at,
            duration=round(facts.duration, 3),
            server_version=facts.server_version,
            server_url=facts.server_url,
            server_pid=facts.server_pid,
            server_origin=facts.server_origin,
            server_capabilities=facts.server_capabilities,
            transcript=facts.transcript,
            result_path=facts.result_path,
            server_log=facts.server_log,
            server_log_tail=facts.server_log_tail,
            totals=totals_of(attempts),
            spend=dict(concluded.summary.get("spend", {})),
            structured=concluded.summary.get("structured"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The result JSON document."""
        data = dataclasses.asdict(self)
        data["attempts"] = list(self.attempts)
        data["rejected_permissions"] = list(self.rejected_permissions)
        data["permission_rules"] = list(self.permission_rules)
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
        "compactions": sum(a.get("compactions", 0) for a in attempts),
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
