"""Facts about opencode's events and parts that the tracker relies on, and its part state."""

from __future__ import annotations

from typing import Any

from core import jsonfast
from core._chunks import Chunks
from core.errors import RunnerError

# Server- and instance-level events that say nothing about the session tree: no effect.
# (The transcript writer records raw events itself; the reader watches `server.*` itself.)
NOISE_TYPES = frozenset(
    {
        "server.connected",
        "server.heartbeat",
        "server.instance.disposed",
        "global.disposed",
        "plugin.added",
        "catalog.updated",
        "integration.updated",
        "integration.connection.updated",
        "reference.updated",
        "models-dev.refreshed",
        "file.edited",
        "file.watcher.updated",
        "lsp.updated",
        "vcs.branch.updated",
        "installation.updated",
        "installation.update-available",
        "project.updated",
        "project.directories.updated",
        "pty.created",
        "pty.updated",
        "pty.exited",
        "pty.deleted",
        "tui.prompt.append",
        "tui.command.execute",
        "tui.toast.show",
        "tui.session.select",
        "mcp.tools.changed",
        "mcp.browser.open.failed",
        "workspace.ready",
        "workspace.failed",
        "workspace.status",
        "worktree.ready",
        "worktree.failed",
    }
)

# The experimental v2 event family mirrors the v1 facts (and was never sent on `/event` by
# 1.18.33); following both would double every delta, so it is ignored like noise.
NOISE_PREFIX = "session.next."

# Known events of the session tree that carry no tracking state: passed on as `Passthrough`.
PASSTHROUGH_TYPES = frozenset(
    {
        "session.created",
        "session.updated",
        "session.deleted",
        "session.diff",
        "session.compacted",
        "message.removed",
        "message.part.removed",
        "todo.updated",
        "permission.replied",
        "question.replied",
        "question.rejected",
        "command.executed",
    }
)

# Events that may add a session to the tree, so they are looked at even for unknown sessions.
TREE_EVENTS = frozenset({"session.created", "session.updated"})

TEXT_TYPES = frozenset({"text", "reasoning"})
TOOL_DONE = frozenset({"completed", "error"})


def is_noise(event_type: Any) -> bool:
    """True for events that never concern the session tree."""
    return event_type in NOISE_TYPES or (
        isinstance(event_type, str) and event_type.startswith(NOISE_PREFIX)
    )


def is_final(part: dict[str, Any], role: str | None) -> bool:
    """Whether this version of a part is its last one.

    Text and reasoning stream until `time.end` is set; a user prompt's text part (and any text
    part born whole, which opencode sends without a `time` object) is final at once. Tools are
    final in state `completed` or `error`. Every other type (step-start, step-finish, patch, file,
    ...) never streams, so its first version is final.
    """
    part_type = part.get("type")
    if part_type in TEXT_TYPES:
        time = part.get("time")
        return role == "user" or not isinstance(time, dict) or time.get("end") is not None
    if part_type == "tool":
        state = part.get("state")
        return isinstance(state, dict) and state.get("status") in TOOL_DONE
    return True


def final_text(part: dict[str, Any], chunks: Chunks | None) -> str | None:
    """The final text of a text/reasoning part: the update's `text`, else the deltas; else None."""
    if part.get("type") not in TEXT_TYPES:
        return None
    text = part.get("text")
    if isinstance(text, str):
        return text
    return chunks.text() if chunks else ""


class OpenPart:
    """Latest version and streamed chunks of a part that is not final yet."""

    __slots__ = ("chunks", "gapped", "part", "part_type")

    def __init__(self, part: dict[str, Any] | None) -> None:
        self.part = part
        self.part_type: str | None = None
        self.chunks = Chunks()
        # The stream may have lost some of its deltas: opened by a delta (its first update was
        # lost), or open across a reconnect or skipped batches (`Tracker.gap`).
        self.gapped = part is None
        if part is not None:
            self.replace(part)

    def replace(self, part: dict[str, Any]) -> None:
        """Take a newer version: its text restarts the buffer that later deltas extend."""
        self.part = part
        self.part_type = part.get("type")
        text = part.get("text")
        self.chunks = Chunks(
            text if self.part_type in TEXT_TYPES and isinstance(text, str) else None
        )


def moved(slot: OpenPart | None, part: dict[str, Any]) -> bool:
    """Does a snapshot's unfinished `part` show more than the stream did (`slot`)?"""
    if slot is None:
        return True
    if part.get("type") in TEXT_TYPES:
        return part.get("text") != slot.chunks.text()
    return part != slot.part


class SnapshotShapeError(RunnerError):
    """A message snapshot is not the `[{info, parts}]` list opencode documents."""


def fingerprint(info: dict[str, Any]) -> int:
    """What changes in a message's info that a consumer acts on, as one small number. (Sorted
    JSON: the stream and a snapshot write the same info with its keys in other orders.)"""
    time = info.get("time") if isinstance(info.get("time"), dict) else {}
    return hash(
        (
            info.get("role"),
            info.get("finish"),
            time.get("completed"),
            _sorted_json(info.get("error")),
            _tokens(info.get("tokens")),
            str(info.get("cost")),
        )
    )


def _sorted_json(value: Any) -> str:
    return "null" if value is None else jsonfast.sorted_keys(value)


_TOKENS = ("total", "input", "output", "reasoning")


def _tokens(tokens: Any) -> Any:
    """The usage opencode reports, as a tuple (it is on every `message.updated`: this is hot);
    any other shape as sorted JSON."""
    cache = tokens.get("cache") if isinstance(tokens, dict) else None
    if isinstance(cache, dict) and len(tokens) == len(_TOKENS) + 1 and len(cache) == 2:
        return (*(tokens.get(key) for key in _TOKENS), cache.get("read"), cache.get("write"))
    return _sorted_json(tokens)


def unpack(message: Any, session_id: str, index: int) -> tuple[dict[str, Any], list[Any]]:
    """Check one snapshot entry's shape; return its info and its parts."""
    info = message.get("info") if isinstance(message, dict) else None
    parts = message.get("parts") if isinstance(message, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("id"), str):
        raise SnapshotShapeError(f"snapshot of {session_id}: message {index} has no info.id")
    if not isinstance(parts, list) or not all(
        isinstance(p, dict) and isinstance(p.get("id"), str) for p in parts
    ):
        raise SnapshotShapeError(f"snapshot of {session_id}: message {index} has a bad part list")
    return info, parts
