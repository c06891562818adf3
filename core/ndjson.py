"""`--json` output: the NDJSON lines `opencode run --format json` prints, from tracker effects.

`opencode run` (cli/cmd/run.ts) emits one object per *final* part of the root session only:
`step_start`, `step_finish`, `text` (with `time.end`), `reasoning` (with `time.end`, and only
with `--thinking`), `tool_use` (state `completed` or `error`), and `error` for a `session.error`
of the root session. No deltas, statuses, user parts or child-session parts. Its closing
`done` line is run-only and left out; the runner ends with one `runner.result` line instead.
"""

from __future__ import annotations

from typing import Any

from core import jsonfast
from core._tracker_effects import PartFinalized, SessionError

__all__ = ["dumps_line", "result_line", "run_json"]

_STEP_TYPES = {"step-start": "step_start", "step-finish": "step_finish"}
_TEXT_TYPES = {"text": "text", "reasoning": "reasoning"}
_TOOL_DONE = frozenset({"completed", "error"})


def run_json(
    effect: Any, *, now_ms: int, thinking: bool, root_session_id: str | None = None
) -> dict[str, Any] | None:
    """The `opencode run --format json` object for one effect, or None if it prints none.

    With `root_session_id`, effects of other sessions (subagents) print nothing, as in
    `opencode run`; without it every session of the effect stream counts.
    """
    session_id = getattr(effect, "session_id", None)
    if session_id is None or root_session_id not in (None, session_id):
        return None
    if isinstance(effect, SessionError):
        return _line("error", now_ms, session_id, error=effect.error)
    if isinstance(effect, PartFinalized) and effect.role != "user":
        kind = _part_kind(effect.part, thinking)
        return None if kind is None else _line(kind, now_ms, session_id, part=effect.part)
    return None


def result_line(result: dict[str, Any]) -> dict[str, Any]:
    """The closing `runner.result` line."""
    return {"type": "runner.result", **result}


def dumps_line(obj: dict[str, Any]) -> str:
    """One NDJSON line with its newline, compact like `JSON.stringify`."""
    return jsonfast.compact_line(obj)


def _part_kind(part: dict[str, Any], thinking: bool) -> str | None:
    """The line type of a final part, or None when `opencode run` prints nothing for it."""
    part_type = part.get("type")
    if part_type in _STEP_TYPES:
        return _STEP_TYPES[part_type]
    if part_type in _TEXT_TYPES:
        time = part.get("time")
        ended = isinstance(time, dict) and bool(time.get("end"))
        wanted = part_type == "text" or thinking
        return _TEXT_TYPES[part_type] if ended and wanted else None
    if part_type == "tool":
        state = part.get("state")
        done = isinstance(state, dict) and state.get("status") in _TOOL_DONE
        return "tool_use" if done else None
    return None


def _line(kind: str, now_ms: int, session_id: str, **payload: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": now_ms, "sessionID": session_id, **payload}
