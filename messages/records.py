"""Lifecycle records of a phase: rendered for people and written to the transcript as
`runner.<name>` lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

AttemptKind = Literal["initial", "resume", "repair"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseStarted:
    """The banner: what runs, where, on which server."""

    phase: str
    label: str
    session_id: str
    directory: str
    agent: str | None
    model: str | None
    server_version: str
    server_url: str
    transcript_path: str | None = None
    permission_rules: tuple[dict[str, str], ...] = ()  # what the session was created with
    server_origin: str | None = None  # a leased server's (the pool daemon's)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptStarted:
    """An attempt (the first prompt, a resume or a repair) is about to be sent."""

    number: int
    kind: AttemptKind
    prompt: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptSent:
    """The prompt of an attempt was accepted by the server."""

    number: int
    baseline: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Resynced:
    """A snapshot was merged after a reconnect or an idle; `recovered` parts were missing.
    `messages` holds what the snapshot told the tracker that the stream had not, per session
    (`core.tracker.recovered_messages`): the transcript keeps it, so `show` replays it at
    `time_ms`, the tracker's stamp of the batch that carries the merge's effects."""

    reason: str
    recovered: int
    error: str | None = None
    messages: tuple[tuple[str, tuple[dict[str, Any], ...]], ...] = ()
    time_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamGap:
    """Events may have been lost here (`reason` "reconnect", or "lost": batches the runner fell
    behind on): the tracker stopped trusting the text streamed so far of the open parts
    (`Tracker.gap`). Recorded, so that `show` marks the same parts at the same place."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PermissionAnswered:
    """A permission request was answered by the phase policy."""

    session_id: str
    request_id: str
    permission: str
    patterns: tuple[str, ...]
    reply: str
    message: str | None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QuestionRejected:
    """A question the agent asked was dismissed (a headless run has nobody to answer)."""

    session_id: str
    request_id: str
    questions: tuple[str, ...]
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """Something the runner wants a person to know (a warning or an error line)."""

    level: Literal["info", "warning", "error"]
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VerdictReached:
    """The phase is over: the verdict, why, and the numbers for the verdict block."""

    verdict: str
    reason: str
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)
