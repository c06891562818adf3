"""The event pipeline end to end: real opencode, the mock LLM, the actors, one prompt each."""

from __future__ import annotations

import io
import json
import queue
import threading
from collections import Counter

import pytest

from actors import ServerSpec
from actors.sse_reader import ReconnectPolicy
from core.permissions import PermissionPolicy
from core.tracker import ChildSession, PartFinalized
from messages.records import PermissionAnswered, QuestionRejected, Resynced
from messages.stream import StreamConnected, StreamDropped
from mock import FaultProxy, MockLLM, opencode_provider_config
from runner.compose import ViewOptions
from runner.one_prompt import OnePrompt, run_one_prompt
from tests.helpers import isolated_env, make_project

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

RUN_JSON_TYPES = {"step-start": "step_start", "text": "text", "tool": "tool_use"}
RUN_JSON_TYPES["step-finish"] = "step_finish"
ALLOW_ALL = PermissionPolicy(default="allow")


@pytest.fixture
def run(tmp_path):
    """Factory: run one prompt against a fresh server and mock; returns (outcome, out, mock)."""

    def go(script, prompt="Do the task", *, config=None, **options):
        project = make_project(tmp_path / f"p{len(list(tmp_path.iterdir()))}")
        with MockLLM(script) as mock:
            opencode_config = {**opencode_provider_config(mock.url), **(config or {})}
            spec = ServerSpec(
                directory=str(project),
                log_path=str(tmp_path / "server.log"),
                env=isolated_env(tmp_path),
                config_content=json.dumps(opencode_config),
            )
            out = io.StringIO()
            view = ViewOptions(
                mode=options.pop("mode", "json"), out=out, thinking=options.pop("thinking", False)
            )
            job = OnePrompt(
                server=spec,
                prompt=prompt,
                model="test/mock-model",
                transcript_path=str(tmp_path / "transcript.jsonl"),
                view=view,
                **options,
            )
            outcome = run_one_prompt(job)
        return outcome, out.getvalue(), mock, project

    return go


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


def assert_each_part_once(outcome, out, types=tuple(RUN_JSON_TYPES)):
    """The NDJSON output has every assistant part of the final snapshot exactly once."""
    expected = assistant_parts(outcome.snapshot, types)
    emitted = [line["part"]["id"] for line in ndjson(out) if "part" in line]
    assert Counter(emitted) == Counter(expected)
    assert len(emitted) == len(set(emitted))


def finalized(outcome):
    return [e for e in outcome.effects() if isinstance(e, PartFinalized)]


def records(outcome, kind):
    return [m for m in outcome.messages if isinstance(m, kind)]


def test_basic_text_reaches_ndjson_once(run):
    outcome, out, _, _ = run({"turns": [{"text": ["Hello", " there."]}]})
    assert outcome.idle, outcome.reason
    assert_each_part_once(outcome, out)
    texts = [line["part"]["text"] for line in ndjson(out) if line["type"] == "text"]
    assert texts == ["Hello there."]
    assert [line["type"] for line in ndjson(out)] == ["step_start", "text", "step_finish"]


def test_tools_read_write_bash_grep_glob_todowrite(run):
    turns = [
        {"tool_calls": [{"name": "read", "arguments": {"filePath": "README.md"}}]},
        {"tool_calls": [{"name": "write", "arguments": {"filePath": "out.txt", "content": "x\n"}}]},
        {
            "tool_calls": [
                {"name": "bash", "arguments": {"command": "echo hi > b.txt", "description": "b"}}
            ]
        },
        {"tool_calls": [{"name": "grep", "arguments": {"pattern": "fixture"}}]},
        {"tool_calls": [{"name": "glob", "arguments": {"pattern": "*.md"}}]},
        {
            "tool_calls": [
                {
                    "name": "todowrite",
                    "arguments": {
                        "todos": [
                            {"content": "step one", "status": "completed", "priority": "high"}
                        ]
                    },
                }
            ]
        },
        {"text": "All done."},
    ]
    outcome, out, _, project = run({"turns": turns}, policy=ALLOW_ALL)
    assert outcome.idle, outcome.reason
    assert_each_part_once(outcome, out)
    tools = {
        line["part"]["tool"]: line["part"]["state"]
        for line in ndjson(out)
        if line["type"] == "tool_use"
    }
    assert set(tools) == {"read", "write", "bash", "grep", "glob", "todowrite"}
    assert {name: state["status"] for name, state in tools.items()} == dict.fromkeys(
        tools, "completed"
    )
    assert "README.md" in tools["glob"]["output"]
    assert "fixture" in tools["grep"]["output"].lower()
    assert (project / "out.txt").read_text() == "x\n"
    assert (project / "b.txt").read_text() == "hi\n"


def test_reasoning_is_emitted_when_thinking(run):
    script = {"turns": [{"reasoning": ["Let me", " think."], "text": "The answer is 42."}]}
    outcome, out, _, _ = run(script, thinking=True)
    assert_each_part_once(outcome, out, types=(*RUN_JSON_TYPES, "reasoning"))
    reasoning = [line["part"]["text"] for line in ndjson(out) if line["type"] == "reasoning"]
    assert reasoning == ["Let me think."]


def test_permission_rejected_at_the_root_with_feedback_lets_the_agent_go_on(run):
    turns = [
        {
            "text": "Running.",
            "tool_calls": [
                {
                    "name": "bash",
                    "arguments": {"command": "echo hi > bash_out.txt", "description": "write"},
                }
            ],
        },
        {"text": "After rejection."},
    ]
    outcome, out, mock, project = run({"turns": turns}, config={"permission": {"bash": "ask"}})
    assert outcome.idle, outcome.reason
    (answer,) = records(outcome, PermissionAnswered)
    assert (answer.permission, answer.reply, answer.error) == ("bash", "reject", None)
    assert answer.patterns == ("echo hi > bash_out.txt",)
    assert answer.session_id == outcome.session_id
    (tool,) = [line["part"] for line in ndjson(out) if line["type"] == "tool_use"]
    assert tool["state"]["status"] == "error"
    assert "phase policy" in tool["state"]["error"]
    assert not (project / "bash_out.txt").exists()
    assert [line["part"]["text"] for line in ndjson(out) if line["type"] == "text"][-1] == (
        "After rejection."
    )
    assert "phase policy" in json.dumps(mock.journal.turns()[-1].body["messages"][-1])


def test_permission_rejected_inside_a_subagent(run):
    script = {
        "turns": [
            {
                "tool_calls": [
                    {
                        "name": "task",
                        "arguments": {
                            "description": "child work",
                            "prompt": "SUBTASK: run the command",
                            "subagent_type": "general",
                        },
                    }
                ]
            },
            {"text": "Parent done."},
        ],
        "subagents": [
            {
                "match": "SUBTASK",
                "turns": [
                    {
                        "tool_calls": [
                            {
                                "name": "bash",
                                "arguments": {"command": "touch child.txt", "description": "child"},
                            }
                        ]
                    },
                    {"text": "Child gave up."},
                ],
            }
        ],
    }
    outcome, out, _, project = run(script, config={"permission": {"bash": "ask"}})
    assert outcome.idle, outcome.reason
    children = [e for e in outcome.effects() if isinstance(e, ChildSession)]
    assert len(children) == 1
    child = children[0].session_id
    (answer,) = records(outcome, PermissionAnswered)
    assert (answer.session_id, answer.permission, answer.reply) == (child, "bash", "reject")
    child_texts = [e.text for e in finalized(outcome) if e.session_id == child and e.text]
    assert "Child gave up." in child_texts
    assert not (project / "child.txt").exists()
    assert_each_part_once(outcome, out)


def test_question_is_rejected_when_the_tool_is_not_denied(run):
    question = {
        "questions": [
            {
                "question": "Proceed?",
                "header": "Confirm",
                "options": [
                    {"label": "Yes", "description": "go"},
                    {"label": "No", "description": "stop"},
                ],
            }
        ]
    }
    turns = [{"tool_calls": [{"name": "question", "arguments": question}]}, {"text": "after"}]
    outcome, out, _, _ = run({"turns": turns}, deny_blocking_tools=False)
    assert outcome.idle, outcome.reason
    (rejected,) = records(outcome, QuestionRejected)
    assert rejected.questions == ("Proceed?",)
    assert rejected.error is None
    (tool,) = [line["part"] for line in ndjson(out) if line["type"] == "tool_use"]
    assert tool["state"]["status"] == "error"


def test_question_tool_is_denied_by_default(run):
    question = {
        "questions": [
            {
                "question": "Proceed?",
                "header": "C",
                "options": [{"label": "Yes", "description": "go"}],
            }
        ]
    }
    turns = [{"tool_calls": [{"name": "question", "arguments": question}]}, {"text": "after"}]
    outcome, out, mock, _ = run({"turns": turns})
    assert outcome.idle, outcome.reason
    assert records(outcome, QuestionRejected) == []
    offered = {tool["function"]["name"] for tool in mock.journal.turns()[0].body["tools"]}
    assert "question" not in offered
    assert_each_part_once(outcome, out)


def test_stream_cut_stalled_and_refused_still_emits_every_part_once(run, tmp_path):
    deltas = [f"chunk {i} " for i in range(40)]
    script = {"turns": [{"text": deltas, "delay": 0.25}]}
    live: queue.Queue = queue.Queue()
    proxies: list[FaultProxy] = []

    def via(url):
        proxy = FaultProxy(url).start()
        proxies.append(proxy)
        proxy.cut_after(12)  # fault 1: the stream is cut mid-turn
        return proxy.url

    def orchestrate():
        drops = 0
        while drops < 2:
            message = live.get(timeout=60)
            if isinstance(message, StreamConnected) and message.connection == 2:
                proxies[0].stall()  # fault 2: silence until the watchdog (3 heartbeats) fires
            if isinstance(message, StreamDropped):
                drops += 1
        proxies[0].refuse_for(3.0)  # fault 3: the server is unreachable for 3 s
        proxies[0].release()

    conductor = threading.Thread(target=orchestrate, daemon=True)
    conductor.start()
    try:
        outcome, out, _, _ = run(
            script,
            via=via,
            observe=live.put,
            reconnect=ReconnectPolicy(heartbeat=1.0, initial=0.1, maximum=0.5),
            timeout=120,
        )
    finally:
        for proxy in proxies:
            proxy.stop()
    conductor.join(timeout=5)
    assert outcome.idle, outcome.reason
    assert_each_part_once(outcome, out)
    (text,) = [line["part"]["text"] for line in ndjson(out) if line["type"] == "text"]
    assert text == "".join(deltas)
    transcript = [json.loads(line) for line in (tmp_path / "transcript.jsonl").open()]
    kinds = Counter(line["type"] for line in transcript)
    assert kinds["runner.stream_dropped"] >= 3
    assert kinds["runner.stream_connected"] >= 3
    assert kinds["runner.resynced"] >= 2
    reasons = [line["reason"] for line in transcript if line["type"] == "runner.stream_dropped"]
    assert any("cannot connect" in reason for reason in reasons), reasons
    assert any(reason.startswith("watchdog: no bytes for") for reason in reasons), reasons


def test_resync_records_are_published(run):
    outcome, _, _, _ = run({"turns": [{"text": "x"}]})
    resyncs = records(outcome, Resynced)
    assert [r.reason for r in resyncs] == ["idle"]
    assert resyncs[0].error is None


def test_plain_output_of_a_tool_heavy_script_line_by_line(run):
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
    outcome, out, _, _ = run({"turns": turns}, mode="plain", policy=ALLOW_ALL)
    assert outcome.idle, outcome.reason
    step = "── step done: tool-calls · 1,000 in / 10 out · $0.0000"
    assert out.splitlines() == [
        "Reading.",
        "✓ read README.md → 3 lines",
        step,
        "✓ write out.txt → 2 bytes",
        step,
        "✓ bash echo hi → exit 0",
        "    hi",
        step,
        "✓ grep fixture → 1 match",
        step,
        "✓ glob *.md → 1 file",
        step,
        "✓ todowrite → 1/2 done",
        "    [x] step one",
        "    [~] step two",
        step,
        "All done.",
        "── step done: stop · 1,000 in / 10 out · $0.0000",
    ]
    assert "\x1b" not in out
