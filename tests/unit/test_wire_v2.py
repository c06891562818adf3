"""opencode 2.x through `core.protocol.v2`: its captured streams and message lists
(`tests/fixtures/captures-2`, from `../shared/opencode/captures-2`) become what the tracker reads
from 1.x, and what a phase's rules become on 2.x reads back as the same rules."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from core.opencode_versions import capabilities
from core.protocol import WireV1, WireV2, wire_for
from core.protocol.v2 import EventsV2, json_answer, messages_of
from core.tracker import (
    ChildSession,
    PartFinalized,
    PermissionAsked,
    SessionError,
    SessionIdle,
    Tracker,
)
from tests.helpers import PROJECT_ROOT

pytestmark = pytest.mark.timeout(30)

CAPTURES = PROJECT_ROOT / "tests" / "fixtures" / "captures-2"


@cache
def scenarios() -> dict[str, Any]:
    return json.loads((CAPTURES / "scenarios.json").read_text())


def stream(name: str) -> list[dict[str, Any]]:
    lines = (CAPTURES / f"{name}.event.jsonl").read_text().splitlines()
    return [json.loads(line)["data"] for line in lines if "data" in json.loads(line)]


def root_of(name: str) -> str:
    created = next(e for e in stream(name) if e["type"] == "session.created")
    return created["data"]["sessionID"]


def tracked(name: str) -> list[Any]:
    """Every effect of the capture's stream, decoded and tracked as the runner does."""
    decode = EventsV2().decode
    tracker = Tracker(root_of(name))
    return [effect for event in stream(name) for e in decode(event) for effect in tracker.apply(e)]


def finals(effects: list[Any]) -> list[PartFinalized]:
    return [e for e in effects if isinstance(e, PartFinalized) and e.role == "assistant"]


def test_a_version_of_2_x_speaks_the_second_protocol():
    caps = capabilities("opencode v2.1.2")
    assert (caps.version, caps.protocol, caps.structured_output) == ("2.1.2", 2, False)
    assert isinstance(wire_for(caps), WireV2)
    assert capabilities("1.18.33").protocol == 1


def test_a_text_turn_is_one_final_text_a_step_and_an_idle():
    effects = tracked("a_text")
    texts = [e.text for e in finals(effects) if e.part_type == "text"]
    assert texts == ["Hello from the mock."]
    steps = [e.part for e in finals(effects) if e.part_type == "step-finish"]
    assert [(s["reason"], s["tokens"]["output"]) for s in steps] == [("stop", 5)]
    starts = [e.part for e in finals(effects) if e.part_type == "step-start"]
    assert all(len(part["snapshot"]) >= 40 for part in (*starts, *steps))  # as 1.x's
    assert isinstance(effects[-1], SessionIdle)


def test_a_tool_turn_shows_the_tool_with_its_input_and_output():
    (tool,) = [e.part for e in finals(tracked("b_write")) if e.part_type == "tool"]
    assert tool["tool"] == "write"
    assert tool["state"]["input"] == {"path": "out.txt", "content": "hello\n"}
    assert tool["state"]["output"] == "Created file successfully: out.txt"


def test_reasoning_and_text_of_one_ordinal_are_two_parts():
    parts = [(e.part_type, e.text) for e in finals(tracked("f_reasoning"))]
    assert ("reasoning", "Let me think about it.") in parts
    assert ("text", "The answer is 42.") in parts


def test_an_ask_reads_as_1_x_with_its_action_named_as_1_x_names_it():
    (asked,) = [e for e in tracked("c_permission_once") if isinstance(e, PermissionAsked)]
    assert asked.request["permission"] == "bash"  # 2.x `shell`
    assert asked.request["patterns"] == ["echo hi > bash_out.txt"]
    assert asked.request["id"].startswith("per_")


def test_an_interrupt_is_an_aborted_error_then_the_idle():
    effects = tracked("h_interrupt")
    errors = [e for e in effects if isinstance(e, SessionError)]
    assert errors[-1].error["name"] == "MessageAbortedError"
    assert isinstance(effects[-1], SessionIdle)


def test_a_subagent_joins_the_tree_and_its_parts_are_its_own():
    effects = tracked("s_subagent")
    (child,) = [e for e in effects if isinstance(e, ChildSession)]
    assert child.parent_id == root_of("s_subagent")
    assert any(e.session_id == child.session_id for e in finals(effects))
    idles = [e.session_id for e in effects if isinstance(e, SessionIdle)]
    assert idles == [child.session_id, root_of("s_subagent")]  # the child ends first


@pytest.mark.parametrize("name", ["a_text", "b_write", "f_reasoning", "c_permission_once"])
def test_a_resync_names_the_parts_the_stream_named(name: str):
    streamed = {(e.part_id, e.part_type, e.text) for e in finals(tracked(name))}
    snapshot = messages_of({"data": scenarios()[name]["messages"]["data"]})
    resynced = Tracker(root_of(name)).apply_snapshot(snapshot, session_id=root_of(name))
    again = {(e.part_id, e.part_type, e.text) for e in finals(resynced)}
    assert again == streamed


@pytest.mark.parametrize("lost", ["session.tool.input.started", "session.tool.called"])
def test_a_tool_whose_name_or_input_was_lost_is_left_for_the_resync_to_end_whole(lost: str):
    decode, root = EventsV2().decode, root_of("b_write")
    tracker = Tracker(root)
    kept = [event for event in stream("b_write") if event["type"] != lost]
    live = [effect for event in kept for e in decode(event) for effect in tracker.apply(e)]
    assert not [e for e in finals(live) if e.part_type == "tool"]  # never ended half-known
    snapshot = messages_of({"data": scenarios()["b_write"]["messages"]["data"]})
    (tool,) = [e.part for e in finals(tracker.apply_snapshot(snapshot, session_id=root))]
    assert (tool["tool"], tool["state"]["input"]) == (
        "write",
        {"path": "out.txt", "content": "hello\n"},
    )


def test_the_newest_messages_come_back_oldest_first_without_the_idle_items():
    request = WireV2().messages("ses_1", limit=2)
    assert dict(request.params) == {"order": "desc", "limit": "16"}  # more: idle items are in
    listed = scenarios()["b_write"]["messages"]["data"]  # user, step, step, idle (oldest first)
    assert request.read is not None
    ids = [m["info"]["id"] for m in request.read({"data": list(reversed(listed))})]
    assert ids == [m["id"] for m in listed[1:3]]  # the two steps: the idle item is no message
    newest = WireV2().messages("ses_1", limit=1)
    assert [m["info"]["id"] for m in newest.read({"data": list(reversed(listed))})] == [
        listed[2]["id"]
    ]


def test_a_resent_prompt_carries_the_runners_message_id_and_an_unknown_event_stays_unknown():
    request = WireV2().prompt_async("ses_1", "Go.", messageID="msg_0001")
    assert request.body == {"text": "Go.", "id": "msg_0001"}
    (event,) = EventsV2().decode({"type": "session.idle", "data": {"sessionID": "s", "kind": 1}})
    assert event == {
        "type": "opencode2.session.idle",
        "properties": {"sessionID": "s", "kind": 1},
    }


RULES = [
    {"permission": "*", "pattern": "*", "action": "ask"},
    {"permission": "bash", "pattern": "*", "action": "deny"},
    {"permission": "edit", "pattern": "*", "action": "allow"},
    {"permission": "task", "pattern": "*", "action": "deny"},
]


def test_a_phases_rules_are_sent_as_2_x_rules_and_read_back_as_the_same():
    request = WireV2().create_session(title="t", permission=RULES, directory="/tmp/project")
    sent = request.body["permissions"]
    assert "permission" not in request.body  # 2.x drops that key, leaving the session open
    assert {"action": "shell", "resource": "*", "effect": "deny"} in sent
    assert {"action": "write", "resource": "*", "effect": "allow"} in sent  # `edit` covers it
    assert request.body["location"] == {"directory": "/tmp/project"}
    assert request.read is not None
    kept = request.read({"data": {"id": "ses_1", "permissions": sent}})
    assert kept["permission"] == RULES
    assert request.read({"data": {"id": "ses_1"}})["permission"] == []  # dropped: seen as such


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('Here:\n```json\n{"answer": 42}\n```', {"answer": 42}),
        ('First ```json\n{"a": 1}\n``` then\n```json\n{"a": 2}\n```', {"a": 2}),  # the last
        ('The result is {"answer": 7}', {"answer": 7}),  # an object closing the text
        ("No result here.", None),
        ('```json\n{"answer": \n```', None),  # broken
        ("```json\n[1, 2]\n```", None),  # not an object
    ],
)
def test_a_json_answer_is_read_from_the_end_of_a_final_text(text, expected):
    assert json_answer(text) == expected


def test_a_prompt_with_an_output_format_asks_for_a_json_block_with_the_schema():
    schema = {"type": "object", "required": ["answer"]}
    body = WireV2().prompt_async(
        "ses_1", "Do it.", format={"type": "json_schema", "schema": schema}
    )
    assert body.body["text"].startswith("Do it.\n\nWhen you are done, end your last message")
    assert '"required": [\n    "answer"\n  ]' in body.body["text"]
    assert WireV2().prompt_async("ses_1", "Do it.").body == {"text": "Do it."}


def test_a_final_json_block_is_the_messages_structured_result_on_the_stream_and_in_a_resync():
    sid, mid = "ses_1", "msg_1"
    text = 'Done.\n```json\n{"answer": 42}\n```'
    events = [
        {"type": "session.step.started", "data": {"sessionID": sid, "assistantMessageID": mid}},
        {
            "type": "session.text.ended",
            "data": {"sessionID": sid, "assistantMessageID": mid, "text": text},
        },
        {
            "type": "session.step.ended",
            "data": {"sessionID": sid, "assistantMessageID": mid, "finish": "stop"},
        },
    ]
    decode = EventsV2().decode
    infos = [
        e["properties"]["info"]
        for ev in events
        for e in decode(ev)
        if e["type"] == "message.updated"
    ]
    assert infos[-1]["structured"] == {"answer": 42}
    item = {
        "id": mid,
        "type": "assistant",
        "time": {"created": 1, "completed": 2},
        "finish": "stop",
    }
    item["content"] = [{"type": "text", "text": text}]
    (message,) = messages_of({"data": [item]})
    assert message["info"]["structured"] == {"answer": 42}


def test_a_long_text_full_of_braces_is_searched_in_bounded_time_and_memory():
    code = "function f() { return { a: 1 }; }\n" * 20_000  # 700 KB ending in `}`, no JSON
    assert json_answer(code) is None
    assert json_answer(code + 'So: {"answer": 1}') == {"answer": 1}


def test_a_compaction_that_ended_is_1_x_s_compacted_and_its_course_is_quiet():
    decode = EventsV2().decode
    course = [
        {"type": f"session.compaction.{step}", "data": {"sessionID": "s", "reason": "auto"}}
        for step in ("started", "delta", "ended")
    ]
    assert [event for e in course for event in decode(e)] == [
        {"type": "session.compacted", "properties": {"sessionID": "s"}}
    ]


def test_an_abort_reads_as_interrupted_unless_2_x_says_nothing_ran():
    assert WireV1().abort("ses_1").read(True) is True  # 1.x: `true`, idle or not
    assert WireV2().abort("ses_1").read({"interrupted": True}) is True
    assert WireV2().abort("ses_1").read({"interrupted": False}) is False
    assert WireV2().abort("ses_1").read(None) is True


def test_a_tool_that_failed_before_its_call_ends_as_the_failure_it_is():
    decode, root = EventsV2().decode, root_of("b_write")
    tracker = Tracker(root)
    data = {"sessionID": root, "assistantMessageID": "msg_1", "id": "call_x"}
    events = [
        {"type": "session.tool.input.started", "data": {**data, "name": "read"}},
        {"type": "session.tool.failed", "data": {**data, "error": {"message": "bad input"}}},
    ]
    effects = [effect for event in events for e in decode(event) for effect in tracker.apply(e)]
    (tool,) = [e.part for e in effects if isinstance(e, PartFinalized)]
    assert (tool["tool"], tool["state"]["status"]) == ("read", "error")
