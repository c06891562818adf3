"""TrackerActor: turns batches of raw events into tracked effects for one phase's session tree.

Thin shell around the pure `Tracker` (part versions, finalisation, session tree) and
`SyncGate` (idle held until its resync). It forwards one `Tracked` per batch to every
downstream consumer (renderer, transcript, termination, permission responder) and asks the
sync actor for snapshots on reconnects and idles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from loguru import logger

from actors._supervised import Report, SupervisedActor
from core.sync_gate import GateOutput, SyncGate
from core.tracker import PartFinalized, Tracker
from messages.pipeline import RequestSync, SnapshotFetched, Tracked
from messages.records import Resynced
from messages.stream import EventsReceived, StreamConnected

Consumer = Callable[[Any], None]


class TrackerActor(SupervisedActor):
    """Tracks one root session and its children; emits `Tracked` batches in stream order."""

    def __init__(
        self,
        *,
        root_session_id: str,
        downstream: Sequence[Consumer],
        request_sync: Consumer,
        report: Report | None = None,
    ) -> None:
        super().__init__(report=report)
        self._root = root_session_id
        self._tracker = Tracker(root_session_id)
        self._gate = SyncGate(root_session_id)
        self._downstream = tuple(downstream)
        self._request_sync = request_sync

    def on_receive(self, message: Any) -> None:
        """Batches from the reader, reconnects, and snapshots from the sync actor."""
        match message:
            case EventsReceived(events=events):
                self._on_events(events)
            case StreamConnected() if message.is_reconnect:
                self._act(self._gate.on_reconnect(), raw=())
            case StreamConnected():
                pass
            case SnapshotFetched():
                self._on_snapshot(message)
            case _:
                logger.warning("TrackerActor ignored unexpected message {!r}", message)

    def session_ids(self) -> frozenset[str]:
        """The session tree (for `ask` by the supervisor and tests)."""
        return self._tracker.session_ids

    def _on_events(self, events: tuple[dict[str, Any], ...]) -> None:
        effects: list[Any] = []
        raw: list[dict[str, Any]] = []
        for event in events:
            produced = self._tracker.apply(event)
            if produced or _session_of(event) in self._tracker.session_ids:
                raw.append(event)
                effects.extend(produced)
        if raw:
            self._act(self._gate.on_effects(effects), raw=tuple(raw))

    def _on_snapshot(self, message: SnapshotFetched) -> None:
        effects: list[Any] = []
        new_messages = False
        for session_id, snapshot in message.snapshots:
            new_messages = new_messages or (session_id == self._root and bool(snapshot))
            effects.extend(self._tracker.apply_snapshot(list(snapshot), session_id=session_id))
        recovered = sum(isinstance(effect, PartFinalized) for effect in effects)
        out = self._gate.on_snapshot(
            message.reason, effects, root_idle=message.root_idle, new_messages=new_messages
        )
        self._publish(Resynced(reason=message.reason, recovered=recovered, error=message.error))
        self._act(out, raw=())

    def _act(self, out: GateOutput, *, raw: tuple[dict[str, Any], ...]) -> None:
        if out.forward or raw:
            self._publish(Tracked(root_session_id=self._root, effects=tuple(out.forward), raw=raw))
        if out.request_sync is not None:
            sessions = tuple(sorted(self._tracker.session_ids))
            self._request_sync(RequestSync(session_ids=sessions, reason=out.request_sync))

    def _publish(self, message: Any) -> None:
        for consumer in self._downstream:
            consumer(message)


def _session_of(event: dict[str, Any]) -> str | None:
    """The session an event concerns, wherever opencode put its id."""
    props = event.get("properties")
    if not isinstance(props, dict):
        return None
    for holder in (props, props.get("info"), props.get("part")):
        if isinstance(holder, dict) and isinstance(holder.get("sessionID"), str):
            return holder["sessionID"]
    return None
