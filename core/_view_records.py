"""Wording of the view's lines for records, errors, statuses and step ends.

The items come from `messages` (which `core` may not import), so they are read by attribute.
Every function returns `(text, style)` pairs; `TerminalView` adds prefix and indentation.
"""

from __future__ import annotations

import math
from typing import Any

from core._view_tools import clip
from core.guards import step_tokens

Styled = tuple[str, str]

PROMPT_WIDTH = 100
_REPLIES = {"reject": "rejected", "once": "allowed once", "always": "allowed always"}


def banner(item: Any) -> list[Styled]:
    """PhaseStarted: what runs, with what, where."""
    title = item.label if item.label == item.phase else f"{item.label} ({item.phase})"
    lines = [
        (f"━━ phase {title}", "banner"),
        (
            f"   agent {item.agent or 'default'} · model {item.model or 'default'}"
            f" · opencode {item.server_version}",
            "dim",
        ),
        (f"   session {item.session_id} · {item.directory}", "dim"),
    ]
    origin = getattr(item, "server_origin", None)
    if origin:
        lines.append((f"   server {item.server_url} · {origin}", "dim"))
    if item.transcript_path:
        lines.append((f"   transcript {item.transcript_path}", "dim"))
    return lines


def attempt(item: Any) -> list[Styled]:
    """AttemptStarted: the attempt line and its prompt, on one clipped line."""
    reason = f": {item.reason}" if item.reason else ""
    prompt = " ".join(str(item.prompt).split())
    return [
        (f"▶ attempt {item.number} ({item.kind}){reason}", "banner"),
        (f"│ {clip(prompt, PROMPT_WIDTH)}", "dim"),
    ]


def permission(item: Any) -> list[Styled]:
    """PermissionAnswered: a warning naming the permission, its patterns and the reply."""
    verb = _REPLIES.get(item.reply, item.reply)
    text = f"⚠ permission {item.permission} ({', '.join(item.patterns)}) {verb} by phase policy"
    if item.error:
        return [(f"{text}; the reply failed: {item.error}", "error")]
    return [(text, "warning")]


def question(item: Any) -> list[Styled]:
    """QuestionRejected: a warning naming the questions."""
    text = f"⚠ question dismissed by phase policy: {' / '.join(item.questions)}"
    if item.error:
        return [(f"{text}; the reply failed: {item.error}", "error")]
    return [(text, "warning")]


def notice(item: Any) -> list[Styled]:
    """Notice: warnings and errors marked as such, anything else as plain text."""
    if item.level == "warning":
        return [(f"⚠ {item.text}", "warning")]
    if item.level == "error":
        return [(f"error: {item.text}", "error")]
    return [(item.text, "text")]


def dropped(item: Any) -> list[Styled]:
    """StreamDropped: why, and how long until the reader retries."""
    return [(f"· stream dropped ({item.reason}); retry in {item.retry_in:g}s", "dim")]


def stream_failed(item: Any) -> list[Styled]:
    """StreamFailed: the stream is gone for good."""
    return [(f"error: event stream failed: {item.reason}", "error")]


def session_error(error: dict[str, Any]) -> list[Styled]:
    """A `session.error`: `error: APIError (HTTP 500): message`, or `error: aborted`."""
    name = str(error.get("name") or "error")
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    if name == "MessageAbortedError":
        return [("error: aborted", "error")]
    status = data.get("statusCode")
    head = f"{name} (HTTP {status})" if status is not None else name
    message = data.get("message")
    return [(f"error: {head}: {message}" if message else f"error: {head}", "error")]


def retry(status: dict[str, Any], now_ms: int) -> list[Styled]:
    """A `retry` status: `retrying in 4s, attempt 2: rate limited`."""
    when = ""
    if isinstance(status.get("next"), int | float):
        left = max(0, status["next"] - now_ms)
        when = f" in {round(left)}ms" if left < 1000 else f" in {math.ceil(left / 1000)}s"
    message = f": {status['message']}" if status.get("message") else ""
    return [(f"retrying{when}, attempt {status.get('attempt', '?')}{message}", "retry")]


def step_finish(part: dict[str, Any], spent: str = "") -> list[Styled]:
    """A step-finish part: reason, tokens and cost on one dim line, then the running totals."""
    figures = [f"step done: {part.get('reason') or '?'}"]
    tokens = part.get("tokens")
    if isinstance(tokens, dict):
        figures.append(token_figures(tokens))
    cost = part.get("cost")
    if isinstance(cost, int | float):
        figures.append(f"${cost:.4f}")
    return [("── " + " · ".join(figures) + (f" ({spent})" if spent else ""), "step")]


class Spent:
    """Running totals of the session tree's steps (what `budgets` limit)."""

    __slots__ = ("cost", "steps", "tokens")

    def __init__(self) -> None:
        self.steps = 0
        self.tokens = 0
        self.cost = 0.0

    def add(self, part: dict[str, Any]) -> str:
        """Count a step-finish part; the totals so far, as the view shows them."""
        self.steps += 1
        self.tokens += step_tokens(part.get("tokens"))
        cost = part.get("cost")
        self.cost += float(cost) if isinstance(cost, int | float) else 0.0
        steps = f"{self.steps} step" + ("s" if self.steps != 1 else "")
        return f"total: {steps} · {self.tokens:,} tokens · ${self.cost:.4f}"


def token_figures(tokens: dict[str, Any]) -> str:
    """`1,234 in / 56 out`, plus reasoning and cache figures when non-zero."""
    text = f"{_int(tokens.get('input')):,} in / {_int(tokens.get('output')):,} out"
    if _int(tokens.get("reasoning")):
        text += f" / {_int(tokens['reasoning']):,} reasoning"
    cache = tokens.get("cache") if isinstance(tokens.get("cache"), dict) else {}
    if _int(cache.get("read")) or _int(cache.get("write")):
        text += f" · cache {_int(cache.get('read')):,} read / {_int(cache.get('write')):,} write"
    return text


def verdict(item: Any) -> list[Styled]:
    """VerdictReached: verdict, reason, exit code and the summary's key figures."""
    style = "verdict.ok" if item.exit_code == 0 else "verdict.bad"
    lines = [(f"━━ verdict: {item.verdict} (exit {item.exit_code})", style)]
    lines.append((f"   {item.reason}", "text"))
    summary = item.summary if isinstance(item.summary, dict) else {}
    figures = _summary_figures(summary)
    if figures:
        lines.append(("   " + " · ".join(figures), "dim"))
    for label, keys in (("transcript", _TRANSCRIPT_KEYS), ("result", _RESULT_KEYS)):
        path = _find(summary, keys)
        if path:
            lines.append((f"   {label}: {path}", "dim"))
    return lines


_TRANSCRIPT_KEYS = ("transcript_path", "transcript", "paths.transcript")
_RESULT_KEYS = ("result_path", "result", "paths.result")


def _summary_figures(summary: dict[str, Any]) -> list[str]:
    """Attempts, tokens, cost and duration, each when the summary has it."""
    figures = []
    attempts = _find(summary, ("attempts",))
    if isinstance(attempts, list | tuple):
        attempts = len(attempts)
    if isinstance(attempts, int):
        figures.append(f"{attempts} attempt{'s' if attempts != 1 else ''}")
    tokens = _find(summary, ("tokens", "totals.tokens"))
    if isinstance(tokens, dict):
        figures.append(token_figures(tokens))
    elif isinstance(tokens, int):
        figures.append(f"{tokens:,} tokens")
    cost = _find(summary, ("cost", "totals.cost"))
    if isinstance(cost, int | float):
        figures.append(f"${cost:.4f}")
    seconds = _find(summary, ("duration_s", "duration", "durations.total_s", "durations.total"))
    if isinstance(seconds, int | float):
        figures.append(f"{seconds:.1f}s")
    return figures


def _find(summary: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The first of the dotted `keys` present in `summary`, else None."""
    for key in keys:
        value: Any = summary
        for name in key.split("."):
            value = value.get(name) if isinstance(value, dict) else None
        if value is not None:
            return value
    return None


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0
