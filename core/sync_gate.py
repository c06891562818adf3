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

A stream can also stay up, heartbeats and all, while it stops carrying the session (opencode
#46733). With `silent` set, `on_tick` asks for a "silent" sync (a lossy one) when the root is
busy (its status said so, or a prompt was just accepted) and no part event came for `silent`
seconds; if its snapshot shows the session moved on (new effects, or unfinished parts further on
than the stream showed), the output says `reconnect`: the stream is reopened, and the
reconnect's own sync follows. If it shows nothing, the termination policy's stall timeout rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.tracker import PartDelta, PartFinalized, SessionIdle, StatusChanged

IDLE = "idle"
RECONNECT = "reconnect"
LOST = "lost"
FINAL = "final"
SILENT = "silent"
_LOSSY = (RECONNECT, LOST, FINAL, SILENT)  # syncs after which an idle may have been lost


@dataclass(slots=True)
class GateOutput:
    """What to forward now, and which sync to request (None: none)."""

    forward: list[Any] = field(default_factory=list)
    request_sync: str | None = None
    reconnect: bool = False  # the stream went silent while the session moved on: reopen it


class SyncGate:
    """Orders idles after the resyncs they depend on, for one root session."""

    def __init__(
        self, root_session_id: str, *, silent: float | None = None, now: float = 0.0
    ) -> None:
        self.root_session_id = root_session_id
        self._silent = silent
        self._busy = False  # the root's latest status is not idle
        self._heard = now  # when the last part event came (or the gate started)
        self._held: SessionIdle | None = None
        self._lossy: str | None = None  # the reconnect or lost sync in flight
        self._again: str | None = None  # asked for while one was in flight: once more after

    @property
    def holding(self) -> bool:
        """True while an idle waits for its sync."""
        return self._held is not None

    def on_effects(self, effects: list[Any], now: float = 0.0, parts: bool = False) -> GateOutput:
        """Forward live effects, holding the root's idle; ask for an idle sync once. `parts`:
        the batch had part events (a running tool's updates make no effect, yet are news)."""
        out = GateOutput()
        if parts:
            self._heard = now
        for effect in effects:
            if isinstance(effect, PartDelta | PartFinalized):
                self._heard = now
            elif isinstance(effect, StatusChanged) and effect.session_id == self.root_session_id:
                self._busy = effect.status.get("type") != "idle"
            if isinstance(effect, SessionIdle) and effect.session_id == self.root_session_id:
                self._busy = False
                if self._held is None:
                    self._held = effect
                    out.request_sync = IDLE
                continue
            out.forward.append(effect)
        return out

    def on_prompt(self, now: float) -> None:
        """A prompt was accepted: the root works from now on, whether or not the stream shows
        its busy status (a stream silent from the start is watched too)."""
        self._busy = True
        self._heard = now

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
            if self._again is None or reason != SILENT:  # a reconnect's sync covers silence
                self._again = reason
            return GateOutput()
        self._lossy = reason
        return GateOutput(request_sync=reason)

    def on_tick(self, now: float) -> GateOutput:
        """Time passed: a silent sync when the busy root sent no part event for `silent`."""
        quiet = now - self._heard
        if self._silent is None or not self._busy or self._held or quiet < self._silent:
            return GateOutput()
        self._heard = now  # the next one, if nothing comes, is `silent` later
        return self._lossy_sync(SILENT)

    def on_stream_failed(self) -> GateOutput:
        """The stream is gone for good: one last sync."""
        return GateOutput(request_sync=FINAL)

    def on_snapshot(
        self,
        reason: str,
        effects: list[Any],
        *,
        root_idle: bool,
        new_messages: bool,
        moved: bool = False,
    ) -> GateOutput:
        """Forward the snapshot's effects, then release (or synthesise) the idle; after a
        silent sync whose snapshot `moved` on (or has effects), ask for the stream again."""
        out = GateOutput(
            forward=list(effects), reconnect=reason == SILENT and bool(moved or effects)
        )
        if reason in (IDLE, FINAL) and self._held is not None:
            out.forward.append(self._held)
            self._held = None
        elif reason in _LOSSY and self._held is None and root_idle and new_messages:
            out.forward.append(SessionIdle(session_id=self.root_session_id))
        if reason in _LOSSY:  # the server said whether the root works (the stream may not)
            self._busy = not root_idle
        if reason in (RECONNECT, LOST, SILENT):
            self._lossy, again, self._again = None, self._again, None
            if again is not None:
                out.request_sync = self._lossy_sync(again).request_sync
        return out
