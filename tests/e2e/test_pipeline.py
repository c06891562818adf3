"""The event pipeline end to end, through the product's wiring: the embedding API attached to
a real opencode server (behind the mock LLM), a fault proxy in between where faults matter."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from core.tracker import ChildSession, PartFinalized
from messages.pipeline import Tracked
from messages.records import PermissionAnswered, Resynced
from messages.stream import StreamConnected, StreamDropped

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

RUN_JSON_TYPES = {"step-start": "step_start", "text": "text", "tool": "tool_use"}
RUN_JSON_TYPES["step-finish"] = "step_finish"
ALLOW_ALL = {"default": "allow"}


def assistant_parts(snapshot, types):
    """Part ids of the assistant messages' parts of the given types, in snapshot order."""
    return [
        part["id"]
        for message in snapshot
        if message["info"]["role"] == "assistant"
        for part in message["parts"]
        if part["type"] in types
    ]


def ndjson(out):
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [line for line in lines if line["type"] != "runner.result"]


def assert_each_part_once(run, types=tuple(RUN_JSON_TYPES)):
    """The NDJSON output has every assistant part of the final snapshot exactly once."""
    expected = assistant_parts(run.snapshot, types)
    emitted = [line["part"]["id"] for line in ndjson(run.out) if "part" in line]
    assert Counter(emitted) == Counter(expected)
    assert len(emitted) == len(set(emitted))


def effects(run):
    return [e for m in run.records(Tracked) for e in m.effects]


def finalized(run):
    return [e for e in effects(run) if isinstance(e, PartFinalized)]


def assert_done(run):
    assert run.result.verdict == "done", (run.result.reason, run.out[-2000:])


def test_basic_text_reaches_ndjson_once(attached):
    run = attached({"turns": [{"text": ["Hello", " there."]}]})
    assert_done(run)
    assert_each_part_once(run)
    texts = [line["part"]["text"] for line in ndjson(run.out) if line["type"] == "text"]
    assert texts == ["Hello there."]
    assert [line["type"] for line in ndjson(run.out)] == ["step_start", "text", "step_finish"]
    assert json.loads(run.out.splitlines()[-1])["type"] == "runner.result"


def test_tools_read_write_bash_grep_glob_todowrite(attached):
    todos = [{"content": "step one", "status": "completed", "priority": "high"}]
    calls = [
        ("read", {"filePath": "README.md"}),
        ("write", {"filePath": "out.txt", "content": "x\n"}),
        ("bash", {"command": "echo hi > b.txt", "description": "b"}),
        ("grep", {"pattern": "fixture"}),
        ("glob", {"pattern": "*.md"}),
        ("todowrite", {"todos": todos}),
    ]
    turns = [{"tool_calls": [{"name": name, "arguments": args}]} for name, args in calls]
    run = attached({"turns": [*turns, {"text": "All done."}]}, permissions=ALLOW_ALL)
    assert_done(run)
    assert_each_part_once(run)
    tools = {
        line["part"]["tool"]: line["part"]["state"]
        for line in ndjson(run.out)
        if line["type"] == "tool_use"
    }
    assert set(tools) == {"read", "write", "bash", "grep", "glob", "todowrite"}
    assert {name: state["status"] for name, state in tools.items()} == dict.fromkeys(
        tools, "completed"
    )
    assert "README.md" in tools["glob"]["output"]
    assert "fixture" in tools["grep"]["output"].lower()
    assert (run.project / "out.txt").read_text() == "x\n"
    assert (run.project / "b.txt").read_text() == "hi\n"


def test_reasoning_is_emitted_when_thinking(attached):
    script = {"turns": [{"reasoning": ["Let me", " think."], "text": "The answer is 42."}]}
    run = attached(script, thinking=True)
    assert_done(run)
    assert_each_part_once(run, types=(*RUN_JSON_TYPES, "reasoning"))
    reasoning = [line["part"]["text"] for line in ndjson(run.out) if line["type"] == "reasoning"]
    assert reasoning == ["Let me think."]


def test_permission_rejected_at_the_root_with_feedback_lets_the_agent_go_on(attached):
    bash = {"command": "echo hi > bash_out.txt", "description": "write"}
    turns = [
        {"text": "Running.", "tool_calls": [{"name": "bash", "arguments": bash}]},
        {"text": "After rejection."},
    ]
    run = attached({"turns": turns}, config={"permission": {"bash": "ask"}})
    assert_done(run)
    (answer,) = run.records(PermissionAnswered)
    assert (answer.permission, answer.reply, answer.error) == ("bash", "reject", None)
    assert answer.patterns == ("echo hi > bash_out.txt",)
    assert answer.session_id == run.result.session_id
    (tool,) = [line["part"] for line in ndjson(run.out) if line["type"] == "tool_use"]
    assert tool["state"]["status"] == "error"
    assert "phase policy" in tool["state"]["error"]
    assert not (run.project / "bash_out.txt").exists()
    texts = [line["part"]["text"] for line in ndjson(run.out) if line["type"] == "text"]
    assert texts[-1] == "After rejection."
    assert "phase policy" in json.dumps(run.mock.journal.turns()[-1].body["messages"][-1])
    (rejected,) = run.result.rejected_permissions  # decided once, counted once
    assert rejected["request_id"] == answer.request_id


def test_permission_rejected_inside_a_subagent(attached):
    # A child session inherits only its parent's deny rules, so the runner denies there what
    # the policy rejects: the child is not offered the tool, and nothing asks.
    child_bash = {"command": "touch child.txt", "description": "child"}
    task = {"description": "child work", "prompt": "SUBTASK: run it", "subagent_type": "general"}
    script = {
        "turns": [{"tool_calls": [{"name": "task", "arguments": task}]}, {"text": "Parent done."}],
        "subagents": [
            {
                "match": "SUBTASK",
                "turns": [
                    {"tool_calls": [{"name": "bash", "arguments": child_bash}]},
                    {"text": "Child gave up."},
                ],
            }
        ],
    }
    run = attached(script, config={"permission": {"bash": "ask"}}, permissions={"allow": ["task"]})
    assert_done(run)
    children = [e for e in effects(run) if isinstance(e, ChildSession)]
    assert len(children) == 1
    child = children[0].session_id
    assert not run.records(PermissionAnswered)
    (first,) = [e for e in run.mock.journal.turns() if e.branch == "SUBTASK"][:1]
    assert "bash" not in {tool["function"]["name"] for tool in first.body.get("tools", ())}
    child_tools = [e for e in finalized(run) if e.session_id == child and e.part_type == "tool"]
    assert [(t.part["tool"], t.part["state"]["input"]["tool"]) for t in child_tools] == [
        ("invalid", "bash")
    ]
    child_texts = [e.text for e in finalized(run) if e.session_id == child and e.text]
    assert "Child gave up." in child_texts
    assert not (run.project / "child.txt").exists()
    assert_each_part_once(run)


def test_question_tool_is_denied_by_default(attached):
    option = {"label": "Yes", "description": "go"}
    question = {"questions": [{"question": "Proceed?", "header": "C", "options": [option]}]}
    turns = [{"tool_calls": [{"name": "question", "arguments": question}]}, {"text": "after"}]
    run = attached({"turns": turns})
    offered = {tool["function"]["name"] for tool in run.mock.journal.turns()[0].body["tools"]}
    assert "question" not in offered
    assert_each_part_once(run)


def test_stream_cut_stalled_and_refused_still_emits_every_part_once(attached):
    deltas = [f"chunk {i} " for i in range(40)]
    script = {"turns": [{"text": deltas, "delay": 0.25}]}

    def faults(mock, proxy):
        mock.journal.wait_for(1, timeout=60)
        proxy.cut_after(12)  # fault 1: the stream is cut mid-turn
        proxy.wait_for_streams(2, timeout=30)
        proxy.stall()  # fault 2: silence until the watchdog (3 heartbeats) shuts it
        proxy.wait_for_streams(3, timeout=60)  # the watchdog fired; a new stream is up, stalled
        proxy.refuse_streams_for(3.0)  # fault 3: the stream is unreachable for 3 s
        proxy.release()
        proxy.drop_streams()
        proxy.wait_for_refusals(1, timeout=30)

    run = attached(script, proxy=lambda _proxy: None, during=faults)
    assert_done(run)
    assert_each_part_once(run)
    (text,) = [line["part"]["text"] for line in ndjson(run.out) if line["type"] == "text"]
    assert text == "".join(deltas)
    kinds = Counter(run.transcript_types())
    assert kinds["runner.stream_dropped"] >= 3
    assert kinds["runner.stream_connected"] >= 3
    assert kinds["runner.resynced"] >= 2
    reasons = [r.reason for r in run.records(StreamDropped)]
    assert any("cannot connect" in reason for reason in reasons), reasons
    assert any(reason.startswith("watchdog: no bytes for") for reason in reasons), reasons
    assert run.result.reconnects == len(run.records(StreamConnected)) - 1 >= 2


def test_resync_records_are_published(attached):
    run = attached({"turns": [{"text": "x"}]})
    resyncs = run.records(Resynced)
    assert [r.reason for r in resyncs] == ["idle"]
    assert resyncs[0].error is None
    assert run.result.resyncs == 1


def test_plain_output_of_a_tool_heavy_script_line_by_line(attached):
    usage = {"prompt_tokens": 1000, "completion_tokens": 10}
    todos = [
        {"content": "step one", "status": "completed", "priority": "high"},
        {"content": "step two", "status": "in_progress", "priority": "low"},
    ]
    calls = [
        ("read", {"filePath": "README.md"}),
        ("write", {"filePath": "out.txt", "content": "x\n"}),
        ("bash", {"command": "echo hi", "description": "say hi"}),
        ("grep", {"pattern": "fixture"}),
        ("glob", {"pattern": "*.md"}),
        ("todowrite", {"todos": todos}),
    ]
    turns = [
        {"tool_calls": [{"name": name, "arguments": arguments}], "usage": usage}
        for name, arguments in calls
    ]
    turns[0]["text"] = "Reading."
    turns.append({"text": ["All ", "done."], "usage": usage})
    run = attached({"turns": turns}, mode="plain", permissions=ALLOW_ALL)
    assert_done(run)

    def step(n, reason="tool-calls"):
        total = f"(total: {n} step{'s' if n > 1 else ''} · {1010 * n:,} tokens · $0.0000)"
        return f"── step done: {reason} · 1,000 in / 10 out · $0.0000 {total}"

    lines = run.out.splitlines()
    body = lines[lines.index("Reading.") : lines.index("All done.") + 2]
    assert body == [
        "Reading.",
        "✓ read README.md → 3 lines",
        step(1),
        "✓ write out.txt → 2 bytes",
        step(2),
        "✓ bash echo hi → exit 0",
        "    hi",
        step(3),
        "✓ grep fixture → 1 match",
        step(4),
        "✓ glob *.md → 1 file",
        step(5),
        "✓ todowrite → 1/2 done",
        "    [x] step one",
        "    [~] step two",
        step(6),
        "All done.",
        step(7, "stop"),
    ]
    assert "\x1b" not in run.out
