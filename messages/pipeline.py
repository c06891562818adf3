"""Messages between the tracker, the sync actor and the consumers of tracked effects."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal

SyncReason = Literal["idle", "reconnect", "lost", "final"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Tracked:
    """What the tracker made of one batch or one snapshot: effects in order, plus the raw
    events of the session tree (for the transcript). `size` is the bytes of the batch it came
    from: what it weighs in a bounded inbox. `time_ms` is when the tracker made it (wall clock,
    milliseconds): the time every output gives its effects, and the transcript records."""

    root_session_id: str
    effects: tuple[Any, ...]
    raw: tuple[dict[str, Any], ...] = ()
    size: int = 0
    raw_json: tuple[str, ...] = ()  # `raw` as received, when every one of them was kept
    time_ms: int = 0

    @classmethod
    def joined(cls, first: Tracked, more: list[Tracked]) -> Tracked:
        """One batch holding `first` and then `more`, in order (a consumer's backlog)."""
        if not more:
            return first
        batches = (first, *more)
        kept = all(len(batch.raw_json) == len(batch.raw) for batch in batches)
        return cls(
            root_session_id=first.root_session_id,
            effects=tuple(chain.from_iterable(batch.effects for batch in batches)),
            raw=tuple(chain.from_iterable(batch.raw for batch in batches)),
            size=sum(batch.size for batch in batches),
            raw_json=tuple(chain.from_iterable(batch.raw_json for batch in batches))
            if kept
            else (),
            time_ms=batches[-1].time_ms,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSync:
    """Fetch the snapshot of these sessions (messages newer than the attempt's baseline)."""

    session_ids: tuple[str, ...]
    reason: SyncReason


@dataclass(frozen=True, slots=True, kw_only=True)
class SetBaseline:
    """Messages up to `message_id` belong to earlier attempts: syncs skip them."""

    message_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotFetched:
    """The result of a sync: messages per session (newest-after-baseline) and whether the
    root session is idle according to `GET /session/status` (an idle sync does not ask: the
    root is idle then)."""

    reason: SyncReason
    snapshots: tuple[tuple[str, tuple[dict[str, Any], ...]], ...]
    root_idle: bool
    error: str | None = None
    asks: tuple[dict[str, Any], ...] = ()  # permission requests still waiting (lossy syncs)
