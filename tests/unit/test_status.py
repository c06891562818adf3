"""core.status: the live status line of the rich view, from what the renderer receives."""

from __future__ import annotations

import pytest

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
