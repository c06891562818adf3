"""The terminal view model: each item -> the exact lines a person sees; captures end to end."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pytest

from actors.renderer import SHOW, RendererActor
from core._view_tools import plural
from core.sse import SseDecoder, parse_event
from core.tracker import (
    ChildSession,
    MessageUpdated,
    PartDelta,
    PartFinalized,
    Passthrough,
    PermissionAsked,
    QuestionAsked,
    SessionError,
    SessionIdle,
    StatusChanged,
    Tracker,
    Unknown,
)
from core.view import RECOVERED, Line, TerminalView, Write
from messages.pipeline import Tracked
from messages.records import (
    AttemptStarted,
    Notice,
    PermissionAnswered,
    PhaseStarted,
    PromptSent,
    QuestionRejected,
    Resynced,
    VerdictReached,
)
from messages.stream import StreamConnected, StreamDropped, StreamFailed
from tests.helpers import CAPTURES

pytestmark = pytest.mark.timeout(30)

ROOT = "ses_root"
CHILD = "ses_child"
GRANDCHILD = "ses_grandchild"
NOW = 1_700_000_000_000
DIRECTORY = "/srv/fixture/proj"

PHASE = PhaseStarted(
    phase="readme",
    label="Read the README",
    session_id=ROOT,
    directory=DIRECTORY,
    agent="build",
    model="test/mock-model",
    server_version="1.18.33",
    server_url="http://127.0.0.1:4096",
)


def show(view: TerminalView, item: Any, now_ms: int = NOW) -> list[Any]:
    """What `view` outputs for a message (routed as the renderer does) or a tracker effect."""
    method = SHOW.get(type(item))
    return method(view, item) if method else view.effect(item, now_ms)


def feed_all(view: TerminalView, items: list[Any], now_ms: int = NOW) -> list[Any]:
    """Everything `view` outputs for `items`, in order."""
    return [out for item in items for out in show(view, item, now_ms)]


def delta(
    text: str, part_id: str = "prt_1", kind: str | None = "text", sid: str = ROOT, gapped=False
) -> Any:
    return PartDelta(
        session_id=sid,
        message_id="msg_1",
        part_id=part_id,
        part_type=kind,
        delta=text,
        gapped=gapped,
    )


def final(
    part: dict[str, Any],
    *,
    text: str | None = None,
    role: str | None = "assistant",
    sid: str = ROOT,
    part_id: str = "prt_1",
    recovered: bool = False,
) -> PartFinalized:
    full = {"id": part_id, "sessionID": sid, "messageID": "msg_1", **part}
    return PartFinalized(
        session_id=sid,
        message_id="msg_1",
        part_id=part_id,
        part_type=str(part["type"]),
        part=full,
        text=text,
        role=role,
        source="stream",
        recovered=recovered,
    )


def text_final(
    text: str, part_id: str = "prt_1", kind: str = "text", sid: str = ROOT, recovered=False
) -> Any:
    part = {"type": kind, "text": text, "time": {"start": 1, "end": 2}}
    return final(part, text=text, sid=sid, part_id=part_id, recovered=recovered)


def tool(
    name: str,
    inputs: dict[str, Any],
    *,
    status: str = "completed",
    output: str | None = None,
    metadata: dict[str, Any] | None = None,
    error: str | None = None,
    sid: str = ROOT,
) -> PartFinalized:
    state: dict[str, Any] = {"status": status, "input": inputs, "time": {"start": 1, "end": 2}}
    if output is not None:
        state["output"] = output
    if metadata is not None:
        state["metadata"] = metadata
    if error is not None:
        state["error"] = error
    return final({"type": "tool", "tool": name, "callID": "call_1", "state": state}, sid=sid)


def child(sid: str = CHILD, parent: str = ROOT, title: str = "Look around (@explore subagent)"):
    return ChildSession(session_id=sid, parent_id=parent, info={"id": sid, "title": title})


STEP_FINISH = {
    "type": "step-finish",
    "reason": "stop",
    "tokens": {"input": 1234, "output": 56, "reasoning": 7, "cache": {"read": 100, "write": 5}},
    "cost": 0.00123,
}

# -- one item -> its exact output ----------------------------------------------------------------

ITEM_CASES = [
    (
        "banner",
        PHASE,
        [
            Line("━━ phase Read the README (readme)", "banner"),
            Line("   agent build · model test/mock-model · opencode 1.18.33", "dim"),
            Line(f"   session {ROOT} · {DIRECTORY}", "dim"),
        ],
    ),
    (
        "banner_defaults_and_transcript",
        PhaseStarted(
            phase="p",
            label="p",
            session_id=ROOT,
            directory="/d",
            agent=None,
            model=None,
            server_version="1.18.33",
            server_url="http://x",
            transcript_path="runs/p.jsonl",
        ),
        [
            Line("━━ phase p", "banner"),
            Line("   agent default · model default · opencode 1.18.33", "dim"),
            Line(f"   session {ROOT} · /d", "dim"),
            Line("   transcript runs/p.jsonl", "dim"),
        ],
    ),
    (
        "attempt_initial",
        AttemptStarted(number=1, kind="initial", prompt="Read README.md"),
        [Line("▶ attempt 1 (initial)", "banner"), Line("│ Read README.md", "dim")],
    ),
    (
        "attempt_resume_prompt_one_clipped_line",
        AttemptStarted(number=2, kind="resume", prompt="Go on.\n" + "x" * 200, reason="cut off"),
        [
            Line("▶ attempt 2 (resume): cut off", "banner"),
            Line("│ Go on. " + "x" * 92 + "…", "dim"),
        ],
    ),
    ("prompt_sent_is_quiet", PromptSent(number=1, baseline=None), []),
    (
        "resynced_recovered",
        Resynced(reason="reconnect", recovered=3),
        [Line("· resync after reconnect: recovered 3 parts", "dim")],
    ),
    ("resynced_nothing_is_quiet", Resynced(reason="idle", recovered=0), []),
    (
        "resynced_failed",
        Resynced(reason="idle", recovered=0, error="HTTP 500"),
        [Line("⚠ resync after idle failed: HTTP 500", "warning")],
    ),
    (
        "permission_rejected",
        PermissionAnswered(
            session_id=ROOT,
            request_id="per_1",
            permission="bash",
            patterns=("echo hi > x",),
            reply="reject",
            message="policy",
        ),
        [Line("⚠ permission bash (echo hi > x) rejected by phase policy", "warning")],
    ),
    (
        "permission_allowed_once_two_patterns",
        PermissionAnswered(
            session_id=ROOT,
            request_id="per_1",
            permission="edit",
            patterns=("a.txt", "b.txt"),
            reply="once",
            message=None,
        ),
        [Line("⚠ permission edit (a.txt, b.txt) allowed once by phase policy", "warning")],
    ),
    (
        "permission_reply_failed",
        PermissionAnswered(
            session_id=ROOT,
            request_id="per_1",
            permission="bash",
            patterns=("ls",),
            reply="reject",
            message=None,
            error="HTTP 404",
        ),
        [
            Line(
                "⚠ permission bash (ls) rejected by phase policy; the reply failed: HTTP 404",
                "error",
            )
        ],
    ),
    (
        "question_rejected",
        QuestionRejected(session_id=ROOT, request_id="que_1", questions=("Proceed?", "Sure?")),
        [Line("⚠ question dismissed by phase policy: Proceed? / Sure?", "warning")],
    ),
    ("notice_info", Notice(level="info", text="resuming"), [Line("resuming", "text")]),
    ("notice_warning", Notice(level="warning", text="slow"), [Line("⚠ slow", "warning")]),
    ("notice_error", Notice(level="error", text="boom"), [Line("error: boom", "error")]),
    ("first_connection_is_quiet", StreamConnected(connection=1), []),
    (
        "reconnected",
        StreamConnected(connection=2),
        [Line("· stream reconnected (connection 2)", "dim")],
    ),
    (
        "dropped",
        StreamDropped(connection=1, reason="EOF", retry_in=2.5),
        [Line("· stream dropped (EOF); retry in 2.5s", "dim")],
    ),
    (
        "stream_failed",
        StreamFailed(reason="HTTP 401"),
        [Line("error: event stream failed: HTTP 401", "error")],
    ),
    (
        "api_error",
        SessionError(
            session_id=ROOT,
            error={"name": "APIError", "data": {"message": "Internal", "statusCode": 500}},
        ),
        [Line("error: APIError (HTTP 500): Internal", "error")],
    ),
    (
        "aborted",
        SessionError(
            session_id=ROOT, error={"name": "MessageAbortedError", "data": {"message": "Aborted"}}
        ),
        [Line("error: aborted", "error")],
    ),
    (
        "unattributed_unknown_error",
        SessionError(session_id=None, error={"name": "UnknownError", "data": {"message": "nope"}}),
        [Line("error: UnknownError: nope", "error")],
    ),
    (
        "retry_rounds_up",
        StatusChanged(
            session_id=ROOT,
            status={"type": "retry", "attempt": 2, "message": "rate limited", "next": NOW + 3200},
        ),
        [Line("retrying in 4s, attempt 2: rate limited", "retry")],
    ),
    (
        "retry_under_a_second_in_milliseconds",
        StatusChanged(
            session_id=ROOT,
            status={"type": "retry", "attempt": 2, "message": "429", "next": NOW + 300},
        ),
        [Line("retrying in 300ms, attempt 2: 429", "retry")],
    ),
    (
        "retry_in_the_past_is_zero",
        StatusChanged(
            session_id=ROOT,
            status={"type": "retry", "attempt": 5, "message": "overloaded", "next": NOW - 900},
        ),
        [Line("retrying in 0ms, attempt 5: overloaded", "retry")],
    ),
    ("busy_is_quiet", StatusChanged(session_id=ROOT, status={"type": "busy"}), []),
    ("idle_is_quiet", SessionIdle(session_id=ROOT), []),
    ("message_is_quiet", MessageUpdated(session_id=ROOT, info={"id": "msg_1"}), []),
    (
        "unknown_event",
        Unknown(event_type="brand.new", event={"type": "brand.new", "properties": {}}),
        [Line("· unknown event brand.new", "dim")],
    ),
    (
        "unknown_untyped",
        Unknown(event_type=None, event=[1]),
        [Line("· unknown event (no type)", "dim")],
    ),
    (
        "todo_updated_is_quiet",
        Passthrough(event_type="todo.updated", session_id=ROOT, event={}),
        [],
    ),
    ("diff_is_quiet", Passthrough(event_type="session.diff", session_id=ROOT, event={}), []),
    (
        "permission_asked_is_quiet",
        PermissionAsked(session_id=ROOT, request={"permission": "bash"}),
        [],
    ),
    ("user_prompt_part_hidden", final({"type": "text", "text": "hi"}, text="hi", role="user"), []),
    ("step_start_hidden", final({"type": "step-start", "snapshot": "abc"}), []),
    ("patch_hidden", final({"type": "patch", "hash": "h", "files": ["/a"]}), []),
    (
        "step_finish",
        final(STEP_FINISH),
        [
            Line(
                "── step done: stop · 1,234 in / 56 out / 7 reasoning · cache 100 read / 5 write"
                " · $0.0012 (total: 1 step · 1,402 tokens · $0.0012)",
                "step",
            )
        ],
    ),
    (
        "step_finish_plain_tokens",
        final(
            {"type": "step-finish", "reason": "tool-calls", "tokens": {"input": 100, "output": 20}}
        ),
        [
            Line(
                "── step done: tool-calls · 100 in / 20 out (total: 1 step · 120 tokens · $0.0000)",
                "step",
            )
        ],
    ),
    ("unknown_part", final({"type": "hologram", "x": 1}), [Line("· unknown part hologram", "dim")]),
    ("not_an_item", object(), []),
]


@pytest.mark.parametrize(
    ("item", "expected"), [c[1:] for c in ITEM_CASES], ids=[c[0] for c in ITEM_CASES]
)
def test_view_item_renders_exact_lines(item, expected):
    assert show(TerminalView(), item) == expected


VERBOSE_CASES = [
    (
        "unknown_with_payload",
        Unknown(event_type="brand.new", event={"type": "brand.new", "properties": {"a": 1}}),
        [Line('· unknown event brand.new {"type":"brand.new","properties":{"a":1}}', "dim")],
    ),
    (
        "passthrough",
        Passthrough(event_type="session.diff", session_id=ROOT, event={}),
        [Line("· session.diff", "dim")],
    ),
    (
        "todo_updated_still_quiet",
        Passthrough(event_type="todo.updated", session_id=ROOT, event={}),
        [],
    ),
    ("first_connection", StreamConnected(connection=1), [Line("· stream connected", "dim")]),
    ("prompt_sent", PromptSent(number=2, baseline="msg_1"), [Line("· prompt 2 sent", "dim")]),
    (
        "resync_nothing",
        Resynced(reason="idle", recovered=0),
        [Line("· resync after idle: recovered 0 parts", "dim")],
    ),
    (
        "permission_asked",
        PermissionAsked(session_id=ROOT, request={"permission": "bash"}),
        [Line('· permission asked {"permission":"bash"}', "dim")],
    ),
    (
        "question_asked",
        QuestionAsked(session_id=ROOT, request={"questions": []}),
        [Line('· question asked {"questions":[]}', "dim")],
    ),
    (
        "unknown_part",
        final({"type": "hologram"}),
        [
            Line(
                '· unknown part hologram {"id":"prt_1","sessionID":"ses_root","messageID":"msg_1",'
                '"type":"hologram"}',
                "dim",
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("item", "expected"), [c[1:] for c in VERBOSE_CASES], ids=[c[0] for c in VERBOSE_CASES]
)
def test_view_verbose_adds_dim_lines(item, expected):
    assert show(TerminalView(verbose=True), item) == expected


# -- tools -------------------------------------------------------------------------------------

BASH_OUT = "\n".join(f"line {i}" for i in range(1, 8)) + "\n"
TOOL_CASES = [
    (
        "read_from_display_metadata",
        tool(
            "read",
            {"filePath": f"{DIRECTORY}/README.md"},
            output="<path>…</path>",
            metadata={"display": {"lineStart": 1, "lineEnd": 2, "totalLines": 2}},
        ),
        [Line("✓ read README.md → 2 lines", "tool.ok")],
    ),
    (
        "read_counts_output_lines_outside_directory",
        tool("read", {"filePath": "/etc/hosts"}, output="<content>\n1: a\n2: b\n3: c\n</content>"),
        [Line("✓ read /etc/hosts → 3 lines", "tool.ok")],
    ),
    (
        "write_bytes",
        tool("write", {"filePath": f"{DIRECTORY}/out.txt", "content": "héllo\n"}),
        [Line("✓ write out.txt → 7 bytes", "tool.ok")],
    ),
    (
        "edit_with_diff_counts",
        tool(
            "edit",
            {"filePath": f"{DIRECTORY}/a.py", "oldString": "a", "newString": "b"},
            metadata={"filediff": {"additions": 3, "deletions": 1}},
        ),
        [Line("✓ edit a.py → +3 -1", "tool.ok")],
    ),
    (
        "edit_plain",
        tool("edit", {"filePath": f"{DIRECTORY}/a.py"}),
        [Line("✓ edit a.py", "tool.ok")],
    ),
    (
        "bash_output_cut_to_five_lines",
        tool(
            "bash",
            {"command": "seq 7", "description": "count"},
            output=BASH_OUT,
            metadata={"exit": 0, "output": BASH_OUT},
        ),
        [
            Line("✓ bash seq 7 → exit 0", "tool.ok"),
            *(Line(f"    line {i}", "dim") for i in range(1, 6)),
            Line("    … 2 more lines", "dim"),
        ],
    ),
    (
        "bash_output_opencode_truncated_names_the_saved_file",
        tool(
            "bash",
            {"command": "seq 10000", "description": "count"},
            output="...\n\n001\n" + "".join(f"{i}\n" for i in range(4002, 10001)),
            metadata={
                "exit": 0,
                "truncated": True,
                "outputPath": "/home/u/.local/share/opencode/tool-output/tool_1",
                "output": "...\n\n001\n" + "".join(f"{i}\n" for i in range(4002, 10001)),
            },
        ),
        [
            Line("✓ bash seq 10000 → exit 0", "tool.ok"),
            Line(
                "    … truncated by opencode; the full output is in"
                " /home/u/.local/share/opencode/tool-output/tool_1",
                "dim",
            ),
            *(Line(f"    {i}", "dim") for i in range(9996, 10001)),
        ],
    ),
    (
        "bash_nonzero_exit",
        tool("bash", {"command": "false"}, output="", metadata={"exit": 1, "output": ""}),
        [Line("✗ bash false → exit 1", "tool.error")],
    ),
    (
        "bash_multiline_command_clipped",
        tool("bash", {"command": "cd x\nmake"}, output="ok\n", metadata={"exit": 0}),
        [Line("✓ bash cd x … → exit 0", "tool.ok"), Line("    ok", "dim")],
    ),
    (
        "bash_rejected",
        tool(
            "bash",
            {"command": "echo hi > x"},
            status="error",
            error="The user rejected permission to use this specific tool call.",
        ),
        [
            Line(
                "✗ bash echo hi > x → error: "
                "The user rejected permission to use this specific tool call.",
                "tool.error",
            )
        ],
    ),
    (
        "grep_matches",
        tool("grep", {"pattern": "TODO", "path": f"{DIRECTORY}/src"}, metadata={"matches": 4}),
        [Line("✓ grep TODO in src → 4 matches", "tool.ok")],
    ),
    (
        "grep_counts_from_output",
        tool("grep", {"pattern": "x+"}, output="Found 12 matches\n/a:\n  Line 1: x"),
        [Line("✓ grep x+ → 12 matches", "tool.ok")],
    ),
    (
        "glob_count",
        tool("glob", {"pattern": "**/*.py"}, metadata={"count": 9, "truncated": False}),
        [Line("✓ glob **/*.py → 9 files", "tool.ok")],
    ),
    (
        "glob_nothing_found",
        tool("glob", {"pattern": "*.rs"}, output="No files found"),
        [Line("✓ glob *.rs → 0 files", "tool.ok")],
    ),
    (
        "todowrite_list",
        tool(
            "todowrite",
            {
                "todos": [
                    {"content": "plan", "status": "completed"},
                    {"content": "build", "status": "in_progress"},
                    {"content": "test", "status": "pending"},
                    {"content": "gold-plate", "status": "cancelled"},
                ]
            },
        ),
        [
            Line("✓ todowrite → 1/4 done", "tool.ok"),
            Line("    [x] plan", "dim"),
            Line("    [~] build", "dim"),
            Line("    [ ] test", "dim"),
            Line("    [-] gold-plate", "dim"),
        ],
    ),
    (
        "task_finished",
        tool("task", {"description": "Find tests", "prompt": "…", "subagent_type": "explore"}),
        [Line("✓ task Find tests (explore) → subagent finished", "tool.ok")],
    ),
    (
        "task_failed",
        tool("task", {"description": "Find tests"}, status="error", error="Aborted"),
        [Line("✗ task Find tests → error: Aborted", "tool.error")],
    ),
    (
        "webfetch",
        tool("webfetch", {"url": "https://example.com", "format": "markdown"}, output="x" * 1500),
        [Line("✓ webfetch https://example.com → 1,500 chars", "tool.ok")],
    ),
    (
        "unknown_tool_generic_json_clipped",
        tool("mcp_search", {"query": "q" * 200}),
        [Line('✓ mcp_search {"query":"' + "q" * 89 + "…", "tool.ok")],
    ),
    (
        "unknown_tool_error",
        tool("skill", {"name": "x"}, status="error", error="no such skill\nstack…"),
        [Line('✗ skill {"name":"x"} → error: no such skill …', "tool.error")],
    ),
]


@pytest.mark.parametrize(
    ("item", "expected"), [c[1:] for c in TOOL_CASES], ids=[c[0] for c in TOOL_CASES]
)
def test_view_tool_renders_one_line_and_details(item, expected):
    view = TerminalView()
    view.banner(PHASE)  # the banner's directory shortens paths
    assert view.effect(item, NOW) == expected


# -- streaming -----------------------------------------------------------------------------------


def test_view_streamed_prefix_writes_remainder_and_ends_line():
    view = TerminalView()
    outs = [
        view.effect(x, NOW) for x in (delta("Hello"), delta(" world"), text_final("Hello world!"))
    ]
    assert outs == [
        [Write("Hello", "text")],
        [Write(" world", "text")],
        [Write("!", "text"), Write("\n", "text")],
    ]


def test_view_streamed_whole_text_only_ends_line():
    view = TerminalView()
    assert feed_all(view, [delta("Hi"), text_final("Hi")]) == [Write("Hi"), Write("\n")]


def test_view_streamed_text_ending_in_newline_adds_no_blank_line():
    view = TerminalView()
    assert feed_all(view, [delta("Hi\n"), text_final("Hi\n")]) == [Write("Hi\n")]
    assert view.flush() == []


def test_view_nothing_streamed_prints_final_text_as_lines():
    view = TerminalView()
    assert view.effect(text_final("one\ntwo\n\nthree\n"), NOW) == [
        Line("one"),
        Line("two"),
        Line(""),
        Line("three"),
    ]


def test_view_diverged_stream_prints_resynced_and_full_text():
    view = TerminalView()
    assert feed_all(view, [delta("Hello wor"), text_final("Hello, lost deltas!")]) == [
        Write("Hello wor"),
        Write("\n"),
        Line("(resynced)", "dim"),
        Line("Hello, lost deltas!"),
    ]


def test_view_gapped_deltas_of_the_streaming_part_wait_for_its_final_text():
    view = TerminalView()
    items = [delta("Hello "), delta("lo", gapped=True), delta("st", gapped=True)]
    assert feed_all(view, [*items, text_final("Hello world, almost lost", recovered=True)]) == [
        Write("Hello "),
        Write("world, almost lost"),
        Write("\n"),
        Line(RECOVERED, "dim"),
    ]


def test_view_a_part_gapped_from_its_first_delta_is_printed_whole_once():
    view = TerminalView()
    items = [delta("now.", gapped=True), delta(" More", gapped=True), delta("B", "prt_b")]
    assert feed_all(view, [*items, text_final("Right now. More", recovered=True)]) == [
        Write("B"),  # the line is free: a part streamed whole takes it
        Write("\n"),
        Line("Right now. More"),
        Line(RECOVERED, "dim"),
    ]


def test_view_line_during_stream_ends_inline_and_stream_resumes_below():
    view = TerminalView()
    retry = StatusChanged(
        session_id=ROOT, status={"type": "retry", "attempt": 1, "message": "429", "next": NOW}
    )
    assert feed_all(view, [delta("Hel"), retry, delta("lo"), text_final("Hello")]) == [
        Write("Hel"),
        Write("\n"),
        Line("retrying in 0ms, attempt 1: 429", "retry"),
        Write("lo"),
        Write("\n"),
    ]


def test_view_second_part_waits_for_its_final_while_first_streams():
    view = TerminalView()
    items = [delta("A1", "prt_a"), delta("B1", "prt_b"), text_final("A1", "prt_a")]
    assert feed_all(view, [*items, text_final("B1 whole", "prt_b")]) == [
        Write("A1"),
        Write("\n"),
        Line("B1 whole"),
    ]


def test_view_empty_final_text_prints_nothing():
    assert TerminalView().effect(text_final("  \n"), NOW) == []


def test_view_delta_of_untyped_part_is_not_streamed():
    view = TerminalView()
    assert view.effect(delta("x", kind=None), NOW) == []
    assert view.effect(text_final("xyz"), NOW) == [Line("xyz")]


def test_view_reasoning_hidden_without_thinking():
    view = TerminalView()
    items = [delta("hmm", kind="reasoning"), text_final("hmm.", kind="reasoning")]
    assert feed_all(view, items) == []


def test_view_reasoning_streams_with_label_when_thinking():
    view = TerminalView(thinking=True)
    items = [delta("Let me", kind="reasoning"), text_final("Let me think.", kind="reasoning")]
    assert feed_all(view, items) == [
        Write("thinking: ", "reasoning"),
        Write("Let me", "reasoning"),
        Write(" think.", "reasoning"),
        Write("\n", "reasoning"),
    ]


def test_view_reasoning_not_streamed_is_one_labelled_line():
    view = TerminalView(thinking=True)
    assert view.effect(text_final("a\nb", kind="reasoning"), NOW) == [
        Line("thinking: a", "reasoning"),
        Line("b", "reasoning"),
    ]


def test_view_flush_ends_open_line_once():
    view = TerminalView()
    view.effect(delta("partial"), NOW)
    assert view.flush() == [Write("\n", "text")]
    assert view.flush() == []


def test_view_dispatches_effects_on_their_type_not_their_name():
    @dataclass(frozen=True)
    class PartDelta:  # a look-alike of the tracker's effect, from somewhere else
        session_id: str = ROOT
        message_id: str = "msg_1"
        part_id: str = "prt_1"
        part_type: str = "text"
        delta: str = "Hi"

    view = TerminalView()
    assert view.effect(PartDelta(), NOW) == []
    assert view.effect(delta("Hi"), NOW) == [Write("Hi")]


def test_view_tracked_batch_is_unpacked_in_order():
    batch = Tracked(root_session_id=ROOT, effects=(delta("Hi"), text_final("Hi!")))
    assert TerminalView().effects(batch.effects, NOW) == [Write("Hi"), Write("!"), Write("\n")]


# -- child sessions and prefix mode --------------------------------------------------------------


def test_view_child_session_parts_are_indented_and_not_streamed():
    view = TerminalView()
    answered = PermissionAnswered(
        session_id=GRANDCHILD,
        request_id="per_1",
        permission="bash",
        patterns=("ls",),
        reply="reject",
        message=None,
    )
    items = [
        child(),
        delta("Looking", sid=CHILD),
        text_final("Looking around.", sid=CHILD),
        tool("glob", {"pattern": "*.md"}, metadata={"count": 2}, sid=CHILD),
        child(GRANDCHILD, CHILD, "deeper"),
        answered,
        SessionError(session_id=CHILD, error={"name": "UnknownError", "data": {"message": "x"}}),
        text_final("Back at the root."),
    ]
    assert feed_all(view, items) == [
        Line("  ↳ subagent started: Look around (@explore subagent)", "step"),
        Line("  Looking around."),
        Line("  ✓ glob *.md → 2 files", "tool.ok"),
        Line("    ↳ subagent started: deeper", "step"),
        Line("    ⚠ permission bash (ls) rejected by phase policy", "warning"),
        Line("  error: UnknownError: x", "error"),
        Line("Back at the root."),
    ]


def test_view_prefix_mode_prints_final_texts_as_prefixed_lines():
    view = TerminalView(prefix="p1")
    items = [
        AttemptStarted(number=1, kind="initial", prompt="Go"),
        delta("Hel"),
        delta("lo"),
        text_final("Hello\nthere"),
        tool("bash", {"command": "ls"}, output="a\n", metadata={"exit": 0}),
        child(),
        text_final("sub", "prt_2", sid=CHILD),
    ]
    assert feed_all(view, items) == [
        Line("[p1] ▶ attempt 1 (initial)", "banner"),
        Line("[p1] │ Go", "dim"),
        Line("[p1] Hello"),
        Line("[p1] there"),
        Line("[p1] ✓ bash ls → exit 0", "tool.ok"),
        Line("[p1]     a", "dim"),
        Line("[p1]   ↳ subagent started: Look around (@explore subagent)", "step"),
        Line("[p1]   sub"),
    ]
    assert view.flush() == []


# -- the verdict block ---------------------------------------------------------------------------


def test_view_verdict_block_with_summary_figures():
    # the summary has the shape of `PhaseResult.to_dict()`
    verdict = VerdictReached(
        verdict="done",
        reason="finished with stop; checks passed",
        exit_code=0,
        summary={
            "attempts": [{"kind": "initial"}, {"kind": "resume"}],
            "totals": {"tokens": {"input": 2000, "output": 150}, "cost": 0.0125},
            "duration": 12.34,
            "transcript": "runs/readme.jsonl",
            "result": "runs/readme.result.json",
        },
    )
    assert TerminalView().verdict(verdict) == [
        Line("━━ verdict: done (exit 0)", "verdict.ok"),
        Line("   finished with stop; checks passed"),
        Line("   2 attempts · 2,000 in / 150 out · $0.0125 · 12.3s", "dim"),
        Line("   transcript: runs/readme.jsonl", "dim"),
        Line("   result: runs/readme.result.json", "dim"),
    ]


def test_view_verdict_block_bad_without_summary_in_prefix_mode():
    verdict = VerdictReached(verdict="stalled", reason="no progress for 10m", exit_code=2)
    assert TerminalView(prefix="b").verdict(verdict) == [
        Line("[b] ━━ verdict: stalled (exit 2)", "verdict.bad"),
        Line("[b]    no progress for 10m"),
    ]


def test_view_verdict_ends_an_open_line_first():
    view = TerminalView()
    view.effect(delta("cut"), NOW)
    outs = view.verdict(VerdictReached(verdict="failed", reason="x", exit_code=1))
    assert outs[0] == Write("\n", "text")
    assert outs[1] == Line("━━ verdict: failed (exit 1)", "verdict.bad")


# -- what a person sees: recorded streams through decoder, tracker and the plain renderer -------


def capture_events(name: str) -> list[dict[str, Any]]:
    """The decoded events of a recorded `/event` stream."""
    lines = (CAPTURES / f"{name}.event.jsonl").read_text(encoding="utf-8").splitlines()
    stream = "".join("\n".join(json.loads(line)["raw"]) + "\n\n" for line in lines).encode()
    decoder = SseDecoder()
    events = [parse_event(frame) for frame in [*decoder.feed(stream), *decoder.close()]]
    return [event for event in events if event is not None]


def render_capture(name: str) -> str:
    """Plain output of a capture, with the records a supervisor would send around it."""
    events = capture_events(name)
    root = next(e["properties"]["sessionID"] for e in events if e["type"] == "session.created")
    tracker = Tracker(root)
    out = io.StringIO()
    actor = RendererActor.start(mode="plain", out=out, clock_ms=lambda: NOW)
    actor.tell(PHASE)
    actor.tell(AttemptStarted(number=1, kind="initial", prompt="Do the thing"))
    for event in events:
        effects = tuple(tracker.apply(event))
        actor.tell(Tracked(root_session_id=root, effects=effects, raw=(event,)))
        for asked in (e for e in effects if isinstance(e, PermissionAsked)):
            actor.tell(answer(asked))
    actor.tell(VerdictReached(verdict="done", reason="finished with stop", exit_code=0))
    actor.proxy().flush().get(timeout=10)
    actor.stop()
    return out.getvalue()


def answer(asked: PermissionAsked) -> PermissionAnswered:
    """The reply the phase policy gives: reject, with feedback."""
    return PermissionAnswered(
        session_id=asked.session_id,
        request_id=asked.request["id"],
        permission=asked.request["permission"],
        patterns=tuple(asked.request["patterns"]),
        reply="reject",
        message="Not allowed in probe",
    )


HEAD = [
    "━━ phase Read the README (readme)",
    "   agent build · model test/mock-model · opencode 1.18.33",
    f"   session {ROOT} · {DIRECTORY}",
    "▶ attempt 1 (initial)",
    "│ Do the thing",
]
TAIL = ["━━ verdict: done (exit 0)", "   finished with stop"]


def test_person_sees_tool_read_capture_line_by_line():
    text = render_capture("b_tool_read")
    assert "\x1b" not in text
    assert text.splitlines() == [
        *HEAD,
        "Reading a file.",
        "✓ read README.md → 2 lines",
        "── step done: tool-calls · 100 in / 20 out · $0.0000"
        " (total: 1 step · 120 tokens · $0.0000)",
        "Done reading.",
        "── step done: stop · 100 in / 20 out · $0.0000 (total: 2 steps · 240 tokens · $0.0000)",
        *TAIL,
    ]
    assert text.endswith("\n")


def test_person_sees_permission_reject_capture_line_by_line():
    text = render_capture("c_permission_reject")
    assert "\x1b" not in text
    assert text.splitlines() == [
        *HEAD,
        "Running a command.",
        "⚠ permission bash (echo hi > bash_out.txt) rejected by phase policy",
        "✗ bash echo hi > bash_out.txt → error: The user rejected permission to use this"
        " specific tool call with the following feedback: Not allowed in probe",
        "── step done: tool-calls · 100 in / 20 out · $0.0000"
        " (total: 1 step · 120 tokens · $0.0000)",
        "After rejection.",
        "── step done: stop · 100 in / 20 out · $0.0000 (total: 2 steps · 240 tokens · $0.0000)",
        *TAIL,
    ]


@pytest.mark.parametrize(
    ("count", "words", "expected"),
    [
        (1, ("file",), "1 file"),
        (2, ("file",), "2 files"),
        (0, ("match", "matches"), "0 matches"),
        (1, ("match", "matches"), "1 match"),
        (1024, ("byte",), "1,024 bytes"),
    ],
)
def test_plural(count, words, expected):
    assert plural(count, *words) == expected
