"""Recorded opencode 1.18.33 streams through decoder and tracker, checked against snapshots."""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from core.sse import SseDecoder, parse_event
from core.tracker import (
    MessageUpdated,
    PartDelta,
    PartFinalized,
    PermissionAsked,
    QuestionAsked,
    SessionError,
    SessionIdle,
    StatusChanged,
    Tracker,
    Unknown,
)

pytestmark = pytest.mark.timeout(30)

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "captures"
# Scenarios whose stream covers the whole run (the reconnect pair is tested on its own below).
PAIRS = sorted(
    p.name.removesuffix(".messages.json")
    for p in CAPTURES.glob("*.messages.json")
    if (CAPTURES / p.name.replace(".messages.json", ".event.jsonl")).exists()
    and not p.name.startswith("i_reconnect.")
)
RECONNECT = "i_reconnect"


def events(name: str, chunk_size: int = 4096) -> list[dict[str, Any]]:
    """The decoded events of `name.event.jsonl`, fed to the decoder in fixed-size chunks."""
    lines = (CAPTURES / f"{name}.event.jsonl").read_text(encoding="utf-8").splitlines()
    stream = "".join("\n".join(json.loads(line)["raw"]) + "\n\n" for line in lines).encode()
    decoder = SseDecoder()
    frames = [
        f
        for i in range(0, len(stream), chunk_size)
        for f in decoder.feed(stream[i : i + chunk_size])
    ]
    frames += decoder.close()
    decoded = [parse_event(frame) for frame in frames]
    assert len(decoded) == len(lines)
    assert not decoder.truncated
    assert all(event is not None for event in decoded)
    return decoded  # type: ignore[return-value]


def snapshot(name: str) -> tuple[str, list[dict[str, Any]]]:
    """The root session id and the messages of `name.messages.json`."""
    messages = json.loads((CAPTURES / f"{name}.messages.json").read_text(encoding="utf-8"))
    (root,) = {message["info"]["sessionID"] for message in messages}
    return root, messages


def snapshot_parts(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every part of a snapshot, by id."""
    return {part["id"]: part for message in messages for part in message["parts"]}


def finalized(effects: list[Any]) -> list[PartFinalized]:
    """The `PartFinalized` effects, in order."""
    return [effect for effect in effects if isinstance(effect, PartFinalized)]


def assert_matches_snapshot(emitted: list[PartFinalized], messages: list[dict[str, Any]]) -> None:
    """Each snapshot part emitted once, with the snapshot's final text or tool outcome."""
    counts = Counter(effect.part_id for effect in emitted)
    assert [pid for pid, n in counts.items() if n > 1] == []
    parts = snapshot_parts(messages)
    assert set(counts) == set(parts)
    for effect in emitted:
        part = parts[effect.part_id]
        assert effect.part_type == part["type"]
        if part["type"] in ("text", "reasoning"):
            assert effect.text == part["text"]
        if part["type"] == "tool":
            for key in ("status", "output", "error"):
                assert effect.part["state"].get(key) == part["state"].get(key)


@pytest.mark.parametrize("name", PAIRS)
def test_replay_emits_every_snapshot_part_once_then_resync_adds_nothing(name: str) -> None:
    root, messages = snapshot(name)
    tracker = Tracker(root)
    effects = [effect for event in events(name) for effect in tracker.apply(event)]
    assert_matches_snapshot(finalized(effects), messages)
    assert all(effect.source == "stream" for effect in finalized(effects))
    assert [e for e in effects if isinstance(e, Unknown)] == []
    assert tracker.open_part_ids == frozenset()
    assert tracker.apply_snapshot(messages, session_id=root) == []


@pytest.mark.parametrize("name", PAIRS)
def test_replay_roles_deltas_and_idle(name: str) -> None:
    root, messages = snapshot(name)
    tracker = Tracker(root)
    stream = events(name)
    effects = [effect for event in stream for effect in tracker.apply(event)]
    roles = {m["info"]["id"]: m["info"]["role"] for m in messages}
    assert all(e.role == roles[e.message_id] for e in finalized(effects))
    deltas = [e for e in effects if isinstance(e, PartDelta)]
    assert len(deltas) == sum(event["type"] == "message.part.delta" for event in stream)
    assert all(e.part_type in ("text", "reasoning") for e in deltas)
    idles = sum(event["type"] == "session.idle" for event in stream)
    assert sum(isinstance(e, SessionIdle) for e in effects) == idles > 0
    statuses = [e.status for e in effects if isinstance(e, StatusChanged)]
    assert all(a != b or a["type"] == "idle" for a, b in pairwise(statuses))
    assert len(statuses) < sum(event["type"] == "session.status" for event in stream)
    latest = {e.info["id"]: e.info for e in effects if isinstance(e, MessageUpdated)}
    assert all(latest[m["info"]["id"]] == m["info"] for m in messages)


def test_replay_reconnect_stream_plus_snapshot_emits_every_part_once() -> None:
    root, messages = snapshot(f"{RECONNECT}.after_reconnect")
    tracker = Tracker(root)
    effects = [
        effect for event in events(f"{RECONNECT}.before_drop") for effect in tracker.apply(event)
    ]
    effects += [
        effect
        for event in events(f"{RECONNECT}.after_reconnect")
        for effect in tracker.apply(event)
    ]
    streamed = "".join(e.delta for e in effects if isinstance(e, PartDelta))
    assert "part 2" not in streamed  # the drop lost these deltas ...
    effects += tracker.apply_snapshot(messages, session_id=root)
    assert_matches_snapshot(finalized(effects), messages)  # ... and nothing is missing
    assert tracker.open_part_ids == frozenset()


def test_replay_reconnect_resync_before_the_stream_resumes() -> None:
    root, messages = snapshot(f"{RECONNECT}.after_reconnect")
    tracker = Tracker(root)
    effects = [
        effect for event in events(f"{RECONNECT}.before_drop") for effect in tracker.apply(event)
    ]
    assert tracker.pending_text(next(iter(tracker.open_part_ids))) == "part 0 part 1 "
    effects += tracker.apply_snapshot(messages, session_id=root)
    late = [
        effect
        for event in events(f"{RECONNECT}.after_reconnect")
        for effect in tracker.apply(event)
    ]
    assert finalized(late) == []
    assert_matches_snapshot(finalized(effects), messages)
    text = next(e for e in finalized(effects) if e.part_type == "text" and e.role == "assistant")
    assert text.source == "snapshot"
    assert text.text == "".join(f"part {i} " for i in range(8))


def test_replay_other_directory_stream_is_ignored() -> None:
    root, _ = snapshot("j_scope.this_dir")
    tracker = Tracker(root)
    assert [
        effect for event in events("j_scope.other_dir") for effect in tracker.apply(event)
    ] == []


def test_replay_interrupted_snapshot_keeps_the_unfinished_text_open() -> None:
    root, messages = snapshot("k_sigterm_busy_after_restart")
    tracker = Tracker(root)
    emitted = finalized(tracker.apply_snapshot(messages, session_id=root))
    parts = snapshot_parts(messages)
    unfinished = {pid for pid, p in parts.items() if "start" in p.get("time", {"end": 0})}
    unfinished -= {pid for pid, p in parts.items() if "end" in p.get("time", {})}
    assert len(unfinished) == 1
    assert {e.part_id for e in emitted} == set(parts) - unfinished
    assert tracker.open_part_ids == unfinished


ALL_STREAMS = sorted(p.name.removesuffix(".event.jsonl") for p in CAPTURES.glob("*.event.jsonl"))


@pytest.mark.parametrize("name", ALL_STREAMS)
def test_replay_every_recorded_event_type_is_understood(name: str) -> None:
    stream = events(name)
    root = next(e["properties"]["sessionID"] for e in stream if "sessionID" in e["properties"])
    tracker = Tracker(root)
    effects = [effect for event in stream for effect in tracker.apply(event)]
    assert [e for e in effects if isinstance(e, Unknown)] == []
    ids = [e.part_id for e in finalized(effects)]
    assert len(ids) == len(set(ids))
    requests = {"permission.asked": PermissionAsked, "question.asked": QuestionAsked}
    for event_type, effect_type in requests.items():
        wanted = [e["properties"] for e in stream if e["type"] == event_type]
        assert [e.request for e in effects if isinstance(e, effect_type)] == wanted
    errors = [e["properties"]["error"] for e in stream if e["type"] == "session.error"]
    assert [e.error for e in effects if isinstance(e, SessionError)] == errors
