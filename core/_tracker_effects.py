"""The effects `Tracker` returns: values describing what happened, for the actors to act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Source = Literal["stream", "snapshot"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PartDelta:
    """Text streamed into a not-yet-final text or reasoning part (for live rendering only).

    `part_type` is None when the part's `message.part.updated` was never seen (lost in a drop).
    `gapped`: the stream may have lost deltas of this part before this one (see `Tracker.gap`),
    so what was streamed of it is not a prefix a view can trust.
    """

    session_id: str
    message_id: str
    part_id: str
    part_type: str | None
    delta: str
    gapped: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PartFinalized:
    """A part reached its final version; emitted exactly once per part id.

    `text` is the final text of text and reasoning parts (None for other types); `role` is the
    role of the part's message ("user" / "assistant") when known, so renderers can skip prompts.
    `recovered`: the stream lost some of this part on the way (a resync found it, or deltas were
    gapped); its final version here is whole.
    """

    session_id: str
    message_id: str
    part_id: str
    part_type: str
    part: dict[str, Any]
    text: str | None
    role: str | None
    source: Source
    recovered: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageUpdated:
    """A message's latest info (`finish`, `error`, `tokens`, `cost`, `time.completed`, ...)."""

    session_id: str
    info: dict[str, Any]
    source: Source = "stream"


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusChanged:
    """A session's status changed: `{"type": "busy" | "idle" | "retry", ...}`."""

    session_id: str
    status: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionIdle:
    """The server said `session.idle`; passed through every time (it repeats after errors)."""

    session_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionError:
    """A `session.error`; `session_id` is None when the server did not attribute it."""

    session_id: str | None
    error: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class PermissionAsked:
    """A `permission.asked` in the session tree; `request` is the event's properties."""

    session_id: str
    request: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class QuestionAsked:
    """A `question.asked` in the session tree; `request` is the event's properties."""

    session_id: str
    request: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSession:
    """A session whose parent is in the tree joined the tree (a subagent started by `task`)."""

    session_id: str
    parent_id: str
    info: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Passthrough:
    """A known event of the session tree the tracker keeps no state for (todos, diffs, ...)."""

    event_type: str
    session_id: str
    event: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Unknown:
    """An event of a type the tracker does not know, or of a known type with a bad shape."""

    event_type: str | None
    event: Any


Effect = (
    PartDelta
    | PartFinalized
    | MessageUpdated
    | StatusChanged
    | SessionIdle
    | SessionError
    | PermissionAsked
    | QuestionAsked
    | ChildSession
    | Passthrough
    | Unknown
)
