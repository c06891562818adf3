"""SyncGate: holds the root session's idle until a resync has merged the snapshot (pure).

Theory of operation. `session.idle` tells the policy "the turn is over", so everything the
turn produced must have been emitted before it, including parts lost in a stream drop and
parts whose final update arrives after the idle (opencode sends those after an abort). So the
first idle of the root is held and an "idle" sync is requested; repeats while it is held are
dropped (opencode sends idle two or three times). When the snapshot of that sync has been
merged, its effects are forwarded, then the held idle. A reconnect requests a "reconnect"
sync; if its snapshot shows the root idle with new messages, the idle itself may have been
lost in the drop, so one is synthesised. A failed sync still releases the idle: a phase must
never hang on a resync. Events dropped because the runner fell behind ("lost") are resynced
like a reconnect. These lossy syncs go one at a time: asked for again while one is in flight,
one more follows it. When the stream is gone for good a "final" sync merges what it can and
releases a held idle: nothing comes after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.tracker import SessionIdle

IDLE = "idle"
RECONNECT = "reconnect"
LOST = "lost"
FINAL = "final"
_LOSSY = (RECONNECT, LOST, FINAL)  # syncs after which an idle may have been lost


@dataclass(slots=True)
class GateOutput:
    """What to forward now, and which sync to request (None: none)."""

    forward: list[Any] = field(default_factory=list)
    request_sync: str | None = None


class SyncGate:
    """Orders idles after the resyncs they depend on, for one root session."""

    def __init__(self, root_session_id: str) -> None:
        self.root_session_id = root_session_id
        self._held: SessionIdle | None = None
        self._lossy: str | None = None  # the reconnect or lost sync in flight
        self._again: str | None = None  # asked for while one was in flight: once more after

    @property
    def holding(self) -> bool:
        """True while an idle waits for its sync."""
        return self._held is not None

    def on_effects(self, effects: list[Any]) -> GateOutput:
        """Forward live effects, holding the root's idle; ask for an idle sync once."""
        out = GateOutput()
        for effect in effects:
            if isinstance(effect, SessionIdle) and effect.session_id == self.root_session_id:
                if self._held is None:
                    self._held = effect
                    out.request_sync = IDLE
                continue
            out.forward.append(effect)
        return out

    def on_reconnect(self) -> GateOutput:
        """A reconnect lost events: ask for a sync."""
        return self._lossy_sync(RECONNECT)

    def on_lost(self) -> GateOutput:
        """Batches were dropped while the runner was behind: ask for a sync."""
        return self._lossy_sync(LOST)

    def _lossy_sync(self, reason: str) -> GateOutput:
        """One lossy sync in flight at a time: more requests meanwhile make one more after it
        (a stream that flaps faster than a resync takes never piles snapshots up)."""
        if self._lossy is not None:
            self._again = reason
            return GateOutput()
        self._lossy = reason
        return GateOutput(request_sync=reason)

    def on_stream_failed(self) -> GateOutput:
        """The stream is gone for good: one last sync."""
        return GateOutput(request_sync=FINAL)

    def on_snapshot(
        self, reason: str, effects: list[Any], *, root_idle: bool, new_messages: bool
    ) -> GateOutput:
        """Forward the snapshot's effects, then release (or synthesise) the idle."""
        out = GateOutput(forward=list(effects))
        if reason in (IDLE, FINAL) and self._held is not None:
            out.forward.append(self._held)
            self._held = None
        elif reason in _LOSSY and self._held is None and root_idle and new_messages:
            out.forward.append(SessionIdle(session_id=self.root_session_id))
        if reason in (RECONNECT, LOST):
            self._lossy, again, self._again = None, self._again, None
            if again is not None:
                out.request_sync = self._lossy_sync(again).request_sync
        return out
