"""TrackerActor: turns the stream into tracked effects for one phase's session tree.

Thin shell around the pure `Tracker` (part versions, finalisation, session tree) and
`SyncGate` (idle held until its resync). It is the phase's only producer of the stream: it
publishes one `Tracked` per batch (stamped with the wall clock) and passes the stream's news on
in order with them. Where events may have been lost it marks the open parts (`StreamGap`) and
asks for a resync: on a reconnect, when its inbox dropped batches (`EventsLost`: the runner fell
behind), and one last time when the stream failed for good; after that final resync it ends
the phase (`EndPhase`), so nothing the server still holds is lost from the verdict. With
`silent` set, a ticker drives the gate's silent-stream check: when a silent resync shows the
session moved on, the tracker says so (`Notice`) and asks for the stream again (`reconnect`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors._supervised import Report, SupervisedActor
from actors.logs import logger
from actors.worker import start_ticker
from core.sync_gate import FINAL, GateOutput, SyncGate
from core.tracker import PartFinalized, Tracker, recovered_messages
from messages.control import EndPhase
from messages.pipeline import RequestSync, SnapshotFetched, Tracked
from messages.records import Notice, PromptSent, Resynced, StreamGap
from messages.stream import EventsLost, EventsReceived, StreamConnected, StreamDropped, StreamFailed

BACKLOG = 512  # batches waiting in the inbox taken with the one at hand, at most
TICK = 1.0  # seconds between two silent-stream checks, at most


@dataclass(frozen=True, slots=True)
class _Tick:
    """Time to check for a silent stream."""


class TrackerActor(SupervisedActor):
    """Tracks one root session and its children; publishes `Tracked` batches in stream order."""

    def __init__(
        self,
        *,
        root_session_id: str,
        publish: Callable[[Any], None],
        report: Report | None = None,
        silent: float | None = None,
        reconnect: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        super().__init__(report=report)
        self._root = root_session_id
        self._tracker = Tracker(root_session_id)
        self._gate = SyncGate(root_session_id, silent=silent, now=clock())
        self._silent = silent
        self._reconnect = reconnect
        self._clock = clock
        self._wall_ms = wall_ms
        self._ticking = threading.Event()  # set: the ticker ends
        self._publish = publish
        self._failed: StreamFailed | None = None
        self._connected = False

    def on_start(self) -> None:
        """Start the silent-stream ticker, when asked for one."""
        if self._silent is not None:
            start_ticker(self.actor_ref, _Tick(), min(TICK, self._silent / 4), self._ticking)

    def on_stop(self) -> None:
        """End the ticker."""
        self._ticking.set()
        super().on_stop()

    def on_receive(self, message: Any) -> None:
        """Batches and news from the stream, snapshots from the sync actor, ticks."""
        match message:
            case _Tick():
                self._act(self._gate.on_tick(self._clock()))
            case EventsReceived():
                self._on_events([message, *self.actor_inbox.take_more(EventsReceived, BACKLOG)])
            case EventsLost():
                self._on_lost()
            case StreamConnected():
                self._publish(message)
                if self._connected:  # a phase joining a stream already up has lost nothing
                    self._gap("reconnect")
                    self._act(self._gate.on_reconnect())
                self._connected = True
            case StreamDropped():
                self._publish(message)
            case StreamFailed() if self._failed is None:
                self._failed = message
                self._publish(message)
                self._act(self._gate.on_stream_failed())
            case SnapshotFetched():
                self._on_snapshot(message)
            case PromptSent():
                self._gate.on_prompt(self._clock())
            case StreamFailed():
                pass
            case _:
                logger.warning("TrackerActor ignored unexpected message {!r}", message)

    def session_ids(self) -> frozenset[str]:
        """The session tree (for `ask` by the supervisor and tests)."""
        return self._tracker.session_ids

    def _on_events(self, batches: list[EventsReceived]) -> None:
        effects: list[Any] = []
        raw: list[dict[str, Any]] = []
        texts: list[str] | None = [] if all(b.texts for b in batches) else None
        apply, tree = self._tracker.apply, self._tracker.session_ids
        for batch in batches:
            for index, event in enumerate(batch.events):
                produced = apply(event)
                if produced or _session_of(event) in tree:
                    raw.append(event)
                    effects.extend(produced)
                    if texts is not None:
                        texts.append(batch.texts[index])
        if raw:
            size = sum(batch.size for batch in batches)
            parts = any(event.get("type", "")[:13] == "message.part." for event in raw)
            out = self._gate.on_effects(effects, self._clock(), parts)
            self._act(out, raw=tuple(raw), size=size, texts=texts)

    def _on_lost(self) -> None:
        dropped = self.actor_inbox.take_dropped()
        logger.warning("tracker fell behind: {} batch(es) dropped; resyncing", dropped)
        text = f"the runner fell behind the stream ({dropped} batch(es) skipped); resyncing"
        self._gap("lost")
        self._publish(Notice(level="warning", text=text))
        self._act(self._gate.on_lost())

    def _gap(self, reason: str) -> None:
        self._tracker.gap()
        self._publish(StreamGap(reason=reason))

    def _on_snapshot(self, message: SnapshotFetched) -> None:
        effects: list[Any] = []
        new_messages = False
        news = self._tracker.snapshot_news
        told: list[tuple[str, tuple[dict[str, Any], ...]]] = []
        for session_id, snapshot in message.snapshots:
            new_messages = new_messages or (session_id == self._root and bool(snapshot))
            final_before = self._tracker.emitted_part_ids
            merged = self._tracker.apply_snapshot(list(snapshot), session_id=session_id)
            if session_id in self._tracker.session_ids:
                kept = recovered_messages(list(snapshot), final_before, merged)
                told.extend([(session_id, kept)] if kept else [])
            effects.extend(merged)
        effects.extend(self._tracker.pending_asks(list(message.asks)))
        recovered = sum(isinstance(effect, PartFinalized) for effect in effects)
        out = self._gate.on_snapshot(
            message.reason,
            effects,
            root_idle=message.root_idle,
            new_messages=new_messages,
            moved=self._tracker.snapshot_news > news,
        )
        now = self._wall_ms()  # the record and the batch of its effects: one time, for `show`
        self._publish(
            Resynced(
                reason=message.reason,
                recovered=recovered,
                error=message.error,
                messages=tuple(told),
                time_ms=now,
            )
        )
        self._act(out, time_ms=now)
        if message.reason == FINAL and self._failed is not None:
            reason = self._failed.reason
            if not reason.startswith("event stream"):
                reason = f"event stream lost: {reason}"
            self._publish(EndPhase(verdict="failed", reason=reason))

    def _act(
        self,
        out: GateOutput,
        *,
        raw: tuple[dict[str, Any], ...] = (),
        size: int = 0,
        texts: list[str] | None = None,
        time_ms: int = 0,
    ) -> None:
        if out.forward or raw:
            self._publish(
                Tracked(
                    root_session_id=self._root,
                    effects=tuple(out.forward),
                    raw=raw,
                    size=size,
                    raw_json=tuple(texts or ()),
                    time_ms=time_ms or self._wall_ms(),
                )
            )
        if out.request_sync is not None:
            sessions = tuple(sorted(self._tracker.session_ids))
            self._publish(RequestSync(session_ids=sessions, reason=out.request_sync))
        if out.reconnect and self._reconnect is not None:
            why = (
                f"the stream carried no part event for {self._silent:g}s while the session moved on"
            )
            self._publish(Notice(level="warning", text=f"{why}; reopening it"))
            self._reconnect(why)


def _session_of(event: dict[str, Any]) -> str | None:
    """The session an event concerns, wherever opencode put its id."""
    props = event.get("properties")
    if not isinstance(props, dict):
        return None
    for holder in (props, props.get("info"), props.get("part")):
        if isinstance(holder, dict) and isinstance(holder.get("sessionID"), str):
            return holder["sessionID"]
    return None
