"""core.status: the live status line of the rich view, from what the renderer receives."""

from __future__ import annotations

import pytest

from actors.live import BoardRelay
from core.status import LiveStatus
from core.tracker import PartDelta, PermissionAsked, StatusChanged
from tests.unit.test_guards import step

pytestmark = pytest.mark.timeout(10)

START = 1_000_000


def delta(part_type):
    return PartDelta(session_id="s", message_id="m", part_id="p", part_type=part_type, delta="x")


def running(tool):
    part = {"type": "tool", "tool": tool, "state": {"status": "running"}}
    return {"type": "message.part.updated", "properties": {"part": part}}


def test_the_line_follows_what_the_phase_does():
    status = LiveStatus(START)
    assert status.line(START) == "● starting · 0s · 0 steps · 0 tokens · $0.0000"
    status.attempt_started(1)
    assert status.line(START + 2_000).startswith("● waiting for the model · 2s · attempt 1 ·")
    status.observe([delta("reasoning")])
    assert status.state == "thinking"
    status.observe([delta("text")])
    assert status.state == "writing"
    status.observe([], [running("bash")])
    assert status.state == "running bash"
    status.observe([step(cost=0.0125, total=48_210)])
    assert status.line(START + 72_000) == (
        "● waiting for the model · 1m12s · attempt 1 · 1 step · 48,210 tokens · $0.0125"
    )
    status.observe([PermissionAsked(session_id="s", request={"permission": "bash"})])
    assert status.state == "waiting for a permission answer"
    status.permission_answered()
    status.finished("done")
    assert status.line(START).startswith("● verdict: done")


def test_a_provider_retry_counts_down_then_the_turn_goes_on():
    status = LiveStatus(START)
    status.attempt_started(2)
    retry = StatusChanged(session_id="s", status={"type": "retry", "next": START + 4_000})
    status.observe([retry])
    assert status.line(START + 1_000).startswith("● retrying in 3s · 1s · attempt 2")
    assert status.line(START + 3_500).startswith("● retrying now")
    status.observe([StatusChanged(session_id="s", status={"type": "busy"})])
    assert status.line(START + 5_000).startswith("● waiting for the model")


def test_totals_add_every_step_of_the_tree():
    status = LiveStatus(START)
    status.observe([step(cost=0.5, total=1000), step(cost=0.25, total=500)])
    assert (status.steps, status.tokens, status.cost) == (2, 1500, 0.75)
    assert status.line(START).endswith("· 2 steps · 1,500 tokens · $0.7500")


def test_the_clock_stops_at_the_verdict():
    status = LiveStatus(START)
    status.finished("done", START + 18_000)
    assert status.fields(START + 60_000)["elapsed"] == "18s"


def test_a_status_crosses_to_another_process_with_its_times_relative():
    node = LiveStatus(START)
    node.attempt_started(2)
    node.observe(
        [
            step(total=1_500, cost=0.25),
            StatusChanged(session_id="s", status={"type": "retry", "next": START + 9_000}),
        ]
    )
    snapshot = node.snapshot(START + 4_000)  # on the node's clock
    assert snapshot["retry_in"] == 5_000
    driver_start = 50_000_000  # another clock altogether
    driver = LiveStatus(driver_start)
    driver.restore(snapshot, driver_start + 1_000)
    assert driver.fields(driver_start + 2_000) == {
        "state": "retrying in 4s",  # 5 s after the restore, 1 s gone
        "elapsed": "2s",  # the driver's own clock
        "attempt": "2",
        "steps": "1",
        "tokens": "1,500",
        "cost": "$0.2500",
    }
    node.finished("done", START + 6_000)
    driver.restore(node.snapshot(START + 6_000), driver_start + 3_000)
    assert driver.fields(driver_start + 60_000)["elapsed"] == "3s"  # stopped at the verdict
    assert driver.fields(driver_start + 60_000)["state"] == "verdict: done"


def test_a_board_relay_hands_over_its_row_and_what_was_printed():
    now = [START]
    relay = BoardRelay(lambda: now[0])
    assert relay.drain() == {"status": None, "printed": []}
    row = relay.row("phase-a")
    row.attempt_started(1)
    relay.print("verdict block")
    drained = relay.drain()
    assert drained["printed"] == ["verdict block"]
    assert (drained["status"]["state"], drained["status"]["attempt"]) == (
        "waiting for the model",
        1,
    )
    assert relay.drain()["printed"] == []
