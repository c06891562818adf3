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
like a reconnect. When the stream is gone for good a "final" sync merges what it can and releases
a held idle: nothing comes after it.
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
        self._idle_sync_pending = False

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
                    self._idle_sync_pending = True
                    out.request_sync = IDLE
                continue
            out.forward.append(effect)
        return out

    def on_reconnect(self) -> GateOutput:
        """A reconnect lost events: ask for a sync."""
        return GateOutput(request_sync=RECONNECT)

    def on_lost(self) -> GateOutput:
        """Batches were dropped while the runner was behind: ask for a sync."""
        return GateOutput(request_sync=LOST)

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
            self._idle_sync_pending = False
        elif reason in _LOSSY and self._held is None and root_idle and new_messages:
            out.forward.append(SessionIdle(session_id=self.root_session_id))
        return out
