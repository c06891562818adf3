"""SyncGate: the root's idle waits for its resync; repeats collapse; reconnects may synthesise."""

from __future__ import annotations

import pytest

from core.sync_gate import SyncGate
from core.tracker import PartDelta, SessionIdle, StatusChanged

pytestmark = pytest.mark.timeout(10)

ROOT = "ses_root"
IDLE = SessionIdle(session_id=ROOT)
BUSY = StatusChanged(session_id=ROOT, status={"type": "busy"})


def test_idle_is_held_and_one_sync_requested():
    gate = SyncGate(ROOT)
    out = gate.on_effects([BUSY, IDLE, "after"])
    assert out.forward == [BUSY, "after"]
    assert out.request_sync == "idle"
    assert gate.holding


def test_repeated_idles_while_held_are_dropped_without_new_syncs():
    gate = SyncGate(ROOT)
    gate.on_effects([IDLE])
    out = gate.on_effects([IDLE, IDLE])
    assert out.forward == []
    assert out.request_sync is None


def test_idle_sync_releases_the_idle_after_the_snapshot_effects():
    gate = SyncGate(ROOT)
    gate.on_effects([IDLE])
    out = gate.on_snapshot("idle", ["part"], root_idle=True, new_messages=True)
    assert out.forward == ["part", IDLE]
    assert not gate.holding


def test_reconnect_sync_does_not_release_a_held_idle():
    gate = SyncGate(ROOT)
    gate.on_effects([IDLE])
    out = gate.on_snapshot("reconnect", ["part"], root_idle=True, new_messages=True)
    assert out.forward == ["part"]
    assert gate.holding


def test_failed_idle_sync_still_releases():
    gate = SyncGate(ROOT)
    gate.on_effects([IDLE])
    out = gate.on_snapshot("idle", [], root_idle=False, new_messages=False)
    assert out.forward == [IDLE]


@pytest.mark.parametrize(
    ("root_idle", "new_messages", "synthesised"),
    [(True, True, True), (True, False, False), (False, True, False)],
)
def test_reconnect_synthesises_a_lost_idle_only_with_new_messages(
    root_idle, new_messages, synthesised
):
    gate = SyncGate(ROOT)
    assert gate.on_reconnect().request_sync == "reconnect"
    out = gate.on_snapshot("reconnect", [], root_idle=root_idle, new_messages=new_messages)
    assert (IDLE in out.forward) is synthesised


def test_child_idles_pass_straight_through():
    gate = SyncGate(ROOT)
    child_idle = SessionIdle(session_id="ses_child")
    out = gate.on_effects([child_idle])
    assert out.forward == [child_idle]
    assert out.request_sync is None


def test_dropped_batches_resync_like_a_reconnect():
    gate = SyncGate(ROOT)
    assert gate.on_lost().request_sync == "lost"
    out = gate.on_snapshot("lost", ["part"], root_idle=True, new_messages=True)
    assert out.forward == ["part", IDLE]


def test_the_final_sync_releases_a_held_idle_after_its_effects():
    gate = SyncGate(ROOT)
    gate.on_effects([IDLE])
    assert gate.on_stream_failed().request_sync == "final"
    out = gate.on_snapshot("final", ["part"], root_idle=False, new_messages=True)
    assert out.forward == ["part", IDLE]
    assert not gate.holding
    assert gate.on_snapshot("idle", [], root_idle=True, new_messages=False).forward == []


def test_lossy_syncs_are_one_at_a_time_and_one_more_follows_if_asked_meanwhile():
    gate = SyncGate(ROOT)
    assert gate.on_reconnect().request_sync == "reconnect"
    assert gate.on_reconnect().request_sync is None  # one in flight
    assert gate.on_lost().request_sync is None
    out = gate.on_snapshot("reconnect", ["part"], root_idle=False, new_messages=True)
    assert (out.forward, out.request_sync) == (["part"], "lost")  # the latest ask, once
    assert gate.on_snapshot("lost", [], root_idle=False, new_messages=False).request_sync is None
    assert gate.on_reconnect().request_sync == "reconnect"


def busy(session=ROOT):
    return StatusChanged(session_id=session, status={"type": "busy"})


def delta(session=ROOT):
    return PartDelta(session_id=session, message_id="m", part_id="p", part_type="text", delta="x")


def silent_gate(silent=60.0):
    gate = SyncGate(ROOT, silent=silent, now=0.0)
    gate.on_effects([busy()], now=0.0)
    return gate


def test_a_busy_root_without_part_events_gets_a_silent_sync():
    gate = silent_gate()
    assert gate.on_tick(59.9).request_sync is None
    assert gate.on_tick(60.0).request_sync == "silent"
    assert gate.on_tick(61.0).request_sync is None  # one in flight; the clock restarted
    gate.on_snapshot("silent", [], root_idle=False, new_messages=False)
    assert gate.on_tick(119.9).request_sync is None
    assert gate.on_tick(120.0).request_sync == "silent"


def test_part_events_idle_and_no_limit_mean_no_silent_sync():
    gate = silent_gate()
    gate.on_effects([delta()], now=50.0)
    assert gate.on_tick(100.0).request_sync is None  # 50 s since the last part event
    gate.on_effects([SessionIdle(session_id=ROOT)], now=100.0)
    assert gate.on_tick(1000.0).request_sync is None  # idle: nothing to wait for
    assert SyncGate(ROOT).on_tick(1000.0).request_sync is None  # no `silent` set
    child = silent_gate()
    child.on_effects([busy("ses_child"), StatusChanged(session_id=ROOT, status={"type": "idle"})])
    assert child.on_tick(1000.0).request_sync is None  # the root is idle, a child busy


def test_a_silent_sync_that_shows_progress_asks_for_the_stream_again():
    gate = silent_gate()
    assert gate.on_tick(60.0).request_sync == "silent"
    moved = gate.on_snapshot("silent", [], root_idle=False, new_messages=False, moved=True)
    assert moved.reconnect
    gate.on_tick(120.0)
    found = gate.on_snapshot("silent", [delta()], root_idle=False, new_messages=True)
    assert found.reconnect
    assert found.forward == [delta()]
    gate.on_tick(180.0)
    still = gate.on_snapshot("silent", [], root_idle=False, new_messages=False)
    assert not still.reconnect  # nothing moved: the stall timeout rules


def test_a_silent_sync_synthesises_the_idle_the_silent_stream_swallowed():
    gate = silent_gate()
    gate.on_tick(60.0)
    out = gate.on_snapshot("silent", [], root_idle=True, new_messages=True, moved=False)
    assert out.forward == [SessionIdle(session_id=ROOT)]


def test_part_events_without_effects_still_count_as_news():
    gate = silent_gate()
    gate.on_effects([], now=50.0, parts=True)  # a running tool's update: no effect
    assert gate.on_tick(100.0).request_sync is None
    assert gate.on_tick(110.0).request_sync == "silent"


def test_a_stream_silent_from_the_prompt_on_gets_a_silent_sync():
    gate = SyncGate(ROOT, silent=60.0, now=0.0)  # no status ever came
    assert gate.on_tick(100.0).request_sync is None  # nothing asked of the root yet
    gate.on_prompt(100.0)
    assert gate.on_tick(150.0).request_sync is None
    assert gate.on_tick(160.0).request_sync == "silent"


def test_a_lossy_sync_says_whether_the_root_works():
    gate = SyncGate(ROOT, silent=60.0, now=0.0)  # the stream never showed the busy status
    gate.on_reconnect()
    gate.on_snapshot("reconnect", [], root_idle=False, new_messages=False)
    assert gate.on_tick(60.0).request_sync == "silent"  # busy, as the server said
    gate.on_snapshot("silent", [], root_idle=True, new_messages=False)
    assert gate.on_tick(1000.0).request_sync is None  # idle now: nothing to watch
