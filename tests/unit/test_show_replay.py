"""`show` replaying a transcript written by hand: no server, no run."""

from __future__ import annotations

import json

import pytest

from runner.cli.show import show_main
from tests.helpers import CAPTURES

pytestmark = pytest.mark.timeout(30)


def test_a_resync_is_merged_at_its_own_time_even_when_a_later_clock_line_follows(tmp_path, capsys):
    # Live, a resync's batch can carry the same millisecond as the batch before it: the writer
    # then writes no `runner.clock` for it, and the next clock line is a later batch's.
    snapshot = json.loads((CAPTURES / "a_basic.messages.json").read_text())
    root = snapshot[0]["info"]["sessionID"]
    lines = [
        {"type": "runner.header", "session_id": root},
        {"type": "runner.clock", "ms": 1000},
        {
            "type": "runner.resynced",
            "time": 1.0,
            "reason": "reconnect",
            "recovered": 3,
            "messages": [[root, snapshot]],
            "time_ms": 1000,
        },
        {"type": "runner.clock", "ms": 2000},
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    assert show_main([str(path), "--json"]) == 0

    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert shown, "the snapshot's parts print"
    assert {line["timestamp"] for line in shown} == {1000}
