"""`--json` lines: effects -> `opencode run --format json` objects, checked against real runs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.ndjson import dumps_line, result_line, run_json
from core.sse import SseDecoder, parse_event
from core.tracker import (
    PartDelta,
    PartFinalized,
    SessionError,
    SessionIdle,
    StatusChanged,
    Tracker,
)
from tests.helpers import CAPTURES

pytestmark = pytest.mark.timeout(30)

ROOT = "ses_root"
CHILD = "ses_child"
NOW = 1_795_568_437_344


def final(part: dict[str, Any], *, role: str | None = "assistant", sid: str = ROOT) -> Any:
    full = {"id": "prt_1", "sessionID": sid, "messageID": "msg_1", **part}
    return PartFinalized(
        session_id=sid,
        message_id="msg_1",
        part_id="prt_1",
        part_type=str(part["type"]),
        part=full,
        text=part.get("text"),
        role=role,
        source="stream",
    )


ENDED = {"start": 1, "end": 2}
TOOL_DONE = {"status": "completed", "input": {}, "output": "", "time": ENDED}
API_ERROR = {"name": "APIError", "data": {"message": "mock error 400", "statusCode": 400}}

CASES = [
    ("step_start", final({"type": "step-start", "snapshot": "s"}), False, "step_start"),
    ("step_finish", final({"type": "step-finish", "reason": "stop"}), False, "step_finish"),
    ("text", final({"type": "text", "text": "Hi", "time": ENDED}), False, "text"),
    ("text_without_end", final({"type": "text", "text": "Hi", "time": {"start": 1}}), False, None),
    ("user_text", final({"type": "text", "text": "Do it"}, role="user"), False, None),
    (
        "user_text_with_end",
        final({"type": "text", "text": "x", "time": ENDED}, role="user"),
        False,
        None,
    ),
    ("reasoning_hidden", final({"type": "reasoning", "text": "hm", "time": ENDED}), False, None),
    (
        "reasoning_thinking",
        final({"type": "reasoning", "text": "hm", "time": ENDED}),
        True,
        "reasoning",
    ),
    (
        "tool_completed",
        final({"type": "tool", "tool": "read", "state": TOOL_DONE}),
        False,
        "tool_use",
    ),
    (
        "tool_error",
        final({"type": "tool", "tool": "bash", "state": {"status": "error", "error": "no"}}),
        False,
        "tool_use",
    ),
    (
        "tool_running",
        final({"type": "tool", "tool": "bash", "state": {"status": "running"}}),
        False,
        None,
    ),
    ("patch", final({"type": "patch", "hash": "h", "files": []}), False, None),
    (
        "delta",
        PartDelta(session_id=ROOT, message_id="m", part_id="p", part_type="text", delta="x"),
        False,
        None,
    ),
    ("status", StatusChanged(session_id=ROOT, status={"type": "busy"}), False, None),
    ("idle", SessionIdle(session_id=ROOT), False, None),
    ("unattributed_error", SessionError(session_id=None, error=API_ERROR), False, None),
    ("not_an_effect", "text", False, None),
]


@pytest.mark.parametrize(
    ("effect", "thinking", "kind"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_run_json_type_per_effect(effect, thinking, kind):
    line = run_json(effect, now_ms=NOW, thinking=thinking, root_session_id=ROOT)
    if kind is None:
        assert line is None
    else:
        assert line == {"type": kind, "timestamp": NOW, "sessionID": ROOT, "part": effect.part}
        assert list(line) == ["type", "timestamp", "sessionID", "part"]  # opencode's key order


def test_run_json_session_error_is_error_line():
    effect = SessionError(session_id=ROOT, error=API_ERROR)
    assert run_json(effect, now_ms=NOW, thinking=False) == {
        "type": "error",
        "timestamp": NOW,
        "sessionID": ROOT,
        "error": API_ERROR,
    }


def test_run_json_skips_child_sessions_only_when_root_is_given():
    part = final({"type": "text", "text": "sub", "time": ENDED}, sid=CHILD)
    error = SessionError(session_id=CHILD, error=API_ERROR)
    assert run_json(part, now_ms=NOW, thinking=False, root_session_id=ROOT) is None
    assert run_json(error, now_ms=NOW, thinking=False, root_session_id=ROOT) is None
    assert run_json(part, now_ms=NOW, thinking=False)["sessionID"] == CHILD


def test_result_line_and_dumps_line():
    line = result_line({"verdict": "done", "exit_code": 0, "cost": 0.5})
    assert line == {"type": "runner.result", "verdict": "done", "exit_code": 0, "cost": 0.5}
    assert dumps_line({"a": "é", "b": [1, 2]}) == '{"a":"é","b":[1,2]}\n'


# -- parity with real `opencode run --format json` output ---------------------------------------


def capture_effects(name: str) -> tuple[str, list[Any]]:
    """The root session id and the tracker's effects for a recorded `/event` stream."""
    lines = (CAPTURES / f"{name}.event.jsonl").read_text(encoding="utf-8").splitlines()
    stream = "".join("\n".join(json.loads(line)["raw"]) + "\n\n" for line in lines).encode()
    decoder = SseDecoder()
    events = [parse_event(frame) for frame in [*decoder.feed(stream), *decoder.close()]]
    root = next(e["properties"]["sessionID"] for e in events if e["type"] == "session.created")
    tracker = Tracker(root)
    return root, [effect for event in events for effect in tracker.apply(event)]


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and value types, without the values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def essentials(line: dict[str, Any]) -> Any:
    """What must match between recordings of the same script: texts, tools, outcomes."""
    part = line.get("part", {})
    state = part.get("state", {})
    error = line.get("error", {})
    return (
        line["type"],
        part.get("text"),
        part.get("tool"),
        state.get("status"),
        part.get("reason"),
        error.get("name"),
    )


# serve capture, `opencode run` capture, whether the two mock scripts had the same texts
PARITY = [
    ("a_basic", "run_a_basic", True),
    ("b_tool_read", "run_b_tool_read", True),
    ("e2_http400_fatal", "run_e2_http400", True),
    # `run` auto-rejects the permission without a message, like c2's reject-without-message;
    # its mock script said "Running." and "echo hi" where c2's said more.
    ("c2_permission_reject_no_message", "run_c_permission_ask", False),
]


@pytest.mark.parametrize(("serve", "run", "same_texts"), PARITY, ids=[p[0] for p in PARITY])
def test_run_json_matches_opencode_run_output(serve, run, same_texts):
    root, effects = capture_effects(serve)
    ours = [
        line
        for effect in effects
        if (line := run_json(effect, now_ms=NOW, thinking=False, root_session_id=root))
    ]
    raw = (CAPTURES / f"{run}.stdout.jsonl").read_text(encoding="utf-8").splitlines()
    theirs = [json.loads(line) for line in raw]
    assert [line["type"] for line in ours] == [line["type"] for line in theirs]
    for mine, real in zip(ours, theirs, strict=True):
        assert list(mine) == list(real)
        assert mine["sessionID"] == root
        assert shape(mine) == shape(real)
        compared = slice(None) if same_texts else slice(2, None)  # the texts differ in c
        assert essentials(mine)[compared] == essentials(real)[compared]


def test_run_json_reasoning_capture_only_with_thinking():
    root, effects = capture_effects("f_reasoning")
    for thinking, expected in ((False, []), (True, ["reasoning"])):
        kinds = [
            line["type"]
            for effect in effects
            if (line := run_json(effect, now_ms=NOW, thinking=thinking, root_session_id=root))
        ]
        assert [k for k in kinds if k == "reasoning"] == expected
        assert kinds[0] == "step_start"
        assert kinds[-1] == "step_finish"
