"""State tracker: turns opencode `/event` events and message snapshots into effects.

Theory of operation
-------------------
The tracker follows one *session tree*: the root session plus every session whose
`session.created` / `session.updated` info names a parent already in the tree (subagents started
by the `task` tool). Events of other sessions return nothing; server and instance noise
(`server.heartbeat`, `plugin.added`, ...) returns nothing; types it does not know return one
`Unknown` so the renderer can show a dim line. Known tree events without tracking state
(`todo.updated`, `session.diff`, `permission.replied`, ...) come back as `Passthrough`.

Parts. A part is *open* until its final version arrives, *final* afterwards (`_take_part`,
`_on_delta`); snapshot parts take the same transitions as stream updates:

    unseen --update, final----------> final  PartFinalized
    unseen --update, not final------> open   (latest version kept)
    unseen --delta------------------> open   PartDelta (part_type None until an update names it)
    open   --delta------------------> open   PartDelta (chunks += delta)
    open   --update, not final------> open   (version replaced; chunks restart from its text)
    open   --update, final----------> final  PartFinalized (open state dropped)
    final  --delta, update, snapshot-> final (nothing)

User prompt parts are emitted too (opencode sends them whole, without `time`), with
`role="user"` taken from the message's info, so renderers can skip them.
Finality rules live in `_tracker_rules.is_final`. A final part's text is the update's `text`
(the full text; deltas are only for live rendering), falling back to the joined deltas. The
only memory kept after finalisation is the part id, in `emitted_part_ids`; so a resync can never
duplicate a part and a late stream update after a snapshot finalised it emits nothing. Message
infos (one small dict per message, for roles and snapshot comparison) are kept too.

Snapshots (`GET /session/{id}/message`, oldest to newest) go through the same transition
(`_take_part`) with `source="snapshot"`: final parts not yet emitted are emitted, in snapshot
order; non-final ones (running tool, text without `time.end`) replace the stored version only.
A message whose snapshot info differs from the last one seen yields a `MessageUpdated`, after
its parts, as on the stream, so the termination policy sees a `finish` lost in a drop.

Gaps. Events lost on the way (a reconnect, batches the runner skipped) are announced with
`gap()`: every open part is marked, as is a part opened by a delta (its first update was lost).
The deltas of a marked part come out `gapped` and its final version `recovered`, so a view that
streams text inline holds back what it cannot trust and prints the final text whole instead.

Statuses: consecutive identical statuses of a session are collapsed (`busy` repeats many times);
`idle` and `session.idle` always pass, because the policy must see every one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core._tracker_effects import (
    ChildSession,
    Effect,
    MessageUpdated,
    PartDelta,
    PartFinalized,
    Passthrough,
    PermissionAsked,
    QuestionAsked,
    SessionError,
    SessionIdle,
    Source,
    StatusChanged,
    Unknown,
)
from core._tracker_rules import (
    PASSTHROUGH_TYPES,
    TEXT_TYPES,
    TREE_EVENTS,
    OpenPart,
    SnapshotShapeError,
    final_text,
    fingerprint,
    is_final,
    is_noise,
    moved,
    unpack,
)

__all__ = [
    "ChildSession",
    "Effect",
    "MessageUpdated",
    "PartDelta",
    "PartFinalized",
    "Passthrough",
    "PermissionAsked",
    "QuestionAsked",
    "SessionError",
    "SessionIdle",
    "SnapshotShapeError",
    "StatusChanged",
    "Tracker",
    "Unknown",
    "recovered_messages",
]


class Tracker:
    """Pure state machine over one session tree: `apply(event)` and `apply_snapshot(...)`."""

    def __init__(self, root_session_id: str) -> None:
        self.root_session_id = root_session_id
        self._tree: set[str] = {root_session_id}
        self._open: dict[str, OpenPart] = {}
        self._final: set[str] = set()
        # Per message only its role and a fingerprint of what the policy reads from its info
        # (finish, completion, error, usage): whole infos would grow with the session.
        self._roles: dict[str, str | None] = {}
        self._marks: dict[str, int] = {}
        self._status: dict[str, dict[str, Any]] = {}
        self.snapshot_news = 0  # unfinished parts a snapshot showed further on than the stream

    @property
    def session_ids(self) -> frozenset[str]:
        """The sessions of the tree: the root and the children followed so far."""
        return frozenset(self._tree)

    @property
    def emitted_part_ids(self) -> frozenset[str]:
        """Ids of every part already emitted as `PartFinalized`."""
        return frozenset(self._final)

    @property
    def open_part_ids(self) -> frozenset[str]:
        """Ids of parts seen but not final yet (the only parts whose state is kept)."""
        return frozenset(self._open)

    def pending_text(self, part_id: str) -> str | None:
        """The text streamed so far into an open part, or None if it is not open."""
        slot = self._open.get(part_id)
        return None if slot is None else slot.chunks.text()

    def gap(self) -> None:
        """Events may have been lost since the last one applied: mark every open part (see
        Gaps above)."""
        for slot in self._open.values():
            slot.gapped = True

    def role_of(self, message_id: str) -> str | None:
        """The role ("user" / "assistant") of a message seen so far, else None."""
        return self._roles.get(message_id)

    def apply(self, event: dict[str, Any]) -> list[Effect]:
        """Apply one decoded `/event` object; return its effects (often none)."""
        props = event.get("properties") if isinstance(event, dict) else None
        if not isinstance(props, dict):
            return [Unknown(event_type=None, event=event)]
        etype = event.get("type")
        sid = props.get("sessionID")
        if type(sid) is not str:
            return self._unattributed(etype, event, props)
        if sid not in self._tree:
            return self._on_session(sid, props) if etype in TREE_EVENTS else []
        handler = _HANDLERS.get(etype)
        if handler is not None:
            return handler(self, sid, props, event)
        if etype in PASSTHROUGH_TYPES:
            return [Passthrough(event_type=etype, session_id=sid, event=event)]
        return [] if is_noise(etype) else [Unknown(event_type=etype, event=event)]

    def apply_snapshot(self, messages: list[dict[str, Any]], *, session_id: str) -> list[Effect]:
        """Merge a `GET /session/{id}/message` result; emit what the stream has not emitted."""
        if not isinstance(messages, list):
            raise SnapshotShapeError(f"snapshot of {session_id}: expected a list of messages")
        if session_id not in self._tree:
            return []
        effects: list[Effect] = []
        for index, message in enumerate(messages):
            info, parts = unpack(message, session_id, index)
            changed = self._remember(info)
            for part in parts:
                effects.extend(self._take_part(session_id, part, "snapshot"))
            if changed:
                effects.append(MessageUpdated(session_id=session_id, info=info, source="snapshot"))
        return effects

    def pending_asks(self, asks: list[dict[str, Any]]) -> list[Effect]:
        """Permission requests still waiting (listed at a resync), those of the tree, as the
        stream would have asked them (answered once: the responder knows their ids)."""
        return [
            PermissionAsked(session_id=ask["sessionID"], request=ask)
            for ask in asks
            if isinstance(ask, dict) and ask.get("sessionID") in self._tree
        ]

    def _remember(self, info: dict[str, Any]) -> bool:
        """Keep a message's role and fingerprint; True if the fingerprint changed."""
        message_id = info["id"]
        mark = fingerprint(info)
        changed = self._marks.get(message_id) != mark
        self._roles[message_id] = info.get("role")
        self._marks[message_id] = mark
        return changed

    # -- transitions ----------------------------------------------------------------------------

    def _take_part(self, sid: str, part: dict[str, Any], source: Source) -> list[Effect]:
        """The one part transition, shared by the stream and snapshots (see the diagram)."""
        part_id = part["id"]
        if part_id in self._final:
            return []
        message_id = part.get("messageID", "")
        role = self.role_of(message_id)
        if not is_final(part, role):
            slot = self._open.get(part_id)
            ahead = source == "snapshot" and moved(slot, part)
            if ahead:
                self.snapshot_news += 1  # the session moved on where the stream showed nothing
            streamed = slot.chunks.text() if slot is not None else None
            if slot is None:
                slot = self._open[part_id] = OpenPart(part)
            else:
                slot.replace(part)
            if ahead and slot.part_type in TEXT_TYPES and slot.chunks.text() != streamed:
                # Not seen opening on the stream, or further on than it: the stream lost some
                # of it (and a snapshot's text of a streaming part may be behind: opencode
                # stores deltas only when the part ends).
                slot.gapped = True
            return []
        slot = self._open.pop(part_id, None)
        self._final.add(part_id)
        text = final_text(part, slot.chunks if slot else None)
        return [
            PartFinalized(
                session_id=sid,
                message_id=message_id,
                part_id=part_id,
                part_type=str(part.get("type")),
                part=part,
                text=text,
                role=role,
                source=source,
                recovered=source == "snapshot" or (slot is not None and slot.gapped),
            )
        ]

    def _on_delta(self, sid: str, props: dict[str, Any], event: Any) -> list[Effect]:
        """Append a streamed chunk to its open part (the hot path: keep it short)."""
        part_id = props.get("partID")
        delta = props.get("delta")
        message_id = props.get("messageID")
        if not (
            isinstance(part_id, str) and isinstance(delta, str) and isinstance(message_id, str)
        ):
            return [Unknown(event_type="message.part.delta", event=event)]
        if part_id in self._final or props.get("field") != "text":
            return []
        slot = self._open.get(part_id)
        if slot is None:
            slot = self._open[part_id] = OpenPart(None)
        slot.chunks.add(delta)
        return [
            PartDelta(
                session_id=sid,
                message_id=message_id,
                part_id=part_id,
                part_type=slot.part_type,
                delta=delta,
                gapped=slot.gapped,
            )
        ]

    def _on_part(self, sid: str, props: dict[str, Any], event: Any) -> list[Effect]:
        """A `message.part.updated`: the part's latest version."""
        part = props.get("part")
        if not isinstance(part, dict) or not isinstance(part.get("id"), str):
            return [Unknown(event_type="message.part.updated", event=event)]
        return self._take_part(sid, part, "stream")

    def _on_message(self, sid: str, props: dict[str, Any], event: Any) -> list[Effect]:
        """A `message.updated`: remember the info (roles, snapshot comparison) and pass it on."""
        info = props.get("info")
        if not isinstance(info, dict) or not isinstance(info.get("id"), str):
            return [Unknown(event_type="message.updated", event=event)]
        self._remember(info)
        return [MessageUpdated(session_id=sid, info=info)]

    def _on_status(self, sid: str, props: dict[str, Any], event: Any) -> list[Effect]:
        """A `session.status`: collapse repeats, except idle which always passes."""
        status = props.get("status")
        if not isinstance(status, dict):
            return [Unknown(event_type="session.status", event=event)]
        if status.get("type") != "idle" and self._status.get(sid) == status:
            return []
        self._status[sid] = status
        return [StatusChanged(session_id=sid, status=status)]

    def _on_session(self, sid: str, props: dict[str, Any]) -> list[Effect]:
        """A session outside the tree joins it if its parent is in the tree."""
        info = props.get("info")
        parent = info.get("parentID") if isinstance(info, dict) else None
        if parent not in self._tree or not isinstance(info, dict):
            return []
        self._tree.add(sid)
        return [ChildSession(session_id=sid, parent_id=parent, info=info)]

    def _on_part_removed(self, sid: str, props: dict[str, Any], event: Any) -> list[Effect]:
        """A `message.part.removed`: forget the open part (bounded memory) and pass it on."""
        self._open.pop(str(props.get("partID")), None)
        return [Passthrough(event_type="message.part.removed", session_id=sid, event=event)]

    def _unattributed(self, etype: Any, event: Any, props: dict[str, Any]) -> list[Effect]:
        """An event without a `sessionID`: server noise, an unattributed error, or unknown."""
        if etype == "session.error":
            return [SessionError(session_id=None, error=props.get("error") or {})]
        return [] if is_noise(etype) else [Unknown(event_type=etype, event=event)]


def recovered_messages(
    messages: list[dict[str, Any]], final_before: frozenset[str], effects: list[Effect]
) -> tuple[dict[str, Any], ...]:
    """What a snapshot told a tracker that it did not know: each message with a part not final
    before (`final_before`: `emitted_part_ids` then) or a changed info, with those parts only.
    Applied to a tracker that had seen the same before, it makes the same effects (what `show`
    replays of a resync)."""
    changed = {e.info.get("id") for e in effects if isinstance(e, MessageUpdated)}
    kept = []
    for message in messages:
        info, parts = message["info"], message["parts"]
        news = [part for part in parts if part["id"] not in final_before]
        if news or info["id"] in changed:
            kept.append({"info": info, "parts": news})
    return tuple(kept)


# The event transitions, in one place: event type -> handler(tracker, session id, props, event).
# Types not listed fall through to Passthrough, noise (nothing) or Unknown in `Tracker.apply`.
_Handler = Callable[[Tracker, str, dict[str, Any], Any], list[Effect]]
_HANDLERS: dict[str, _Handler] = {
    "message.part.delta": Tracker._on_delta,
    "message.part.updated": Tracker._on_part,
    "message.updated": Tracker._on_message,
    "session.status": Tracker._on_status,
    "message.part.removed": Tracker._on_part_removed,
    "session.idle": lambda _t, sid, _p, _e: [SessionIdle(session_id=sid)],
    "session.error": lambda _t, sid, p, _e: [
        SessionError(session_id=sid, error=p.get("error") or {})
    ],
    "permission.asked": lambda _t, sid, p, _e: [PermissionAsked(session_id=sid, request=p)],
    "question.asked": lambda _t, sid, p, _e: [QuestionAsked(session_id=sid, request=p)],
}
