"""RendererActor in its three modes, writing to a StringIO; no sleeps, futures only."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from loguru import logger

from actors.renderer import SHOW, RendererActor
from core.tracker import PartDelta, PartFinalized, StatusChanged, Tracker
from core.view import TerminalView
from messages.pipeline import Tracked
from messages.records import Notice, PhaseStarted, VerdictReached
from messages.stream import StreamDropped
from runner.supervisor.routes import RENDERER, ROUTES
from tests.unit.test_view import capture_events, render_capture

pytestmark = pytest.mark.timeout(30)

ROOT = "ses_root"
NOW = 1_700_000_000_000
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def color_env(monkeypatch):
    """A colour-capable terminal environment, whatever the CI sets."""
    monkeypatch.setenv("TERM", "xterm-256color")
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


def start(mode: str, **kwargs: Any) -> tuple[Any, io.StringIO]:
    out = io.StringIO()
    return RendererActor.start(mode=mode, out=out, clock_ms=lambda: NOW, **kwargs), out


def settle(actor: Any) -> None:
    """Wait until every message told before has been handled (same inbox, FIFO)."""
    actor.proxy().flush().get(timeout=10)


def delta(text: str) -> PartDelta:
    return PartDelta(session_id=ROOT, message_id="m", part_id="p", part_type="text", delta=text)


def text_final(text: str) -> PartFinalized:
    part = {"id": "p", "type": "text", "text": text, "time": {"start": 1, "end": 2}}
    return PartFinalized(
        session_id=ROOT,
        message_id="m",
        part_id="p",
        part_type="text",
        part=part,
        text=text,
        role="assistant",
        source="stream",
    )


def tracked(*effects: Any) -> Tracked:
    return Tracked(root_session_id=ROOT, effects=effects)


def tell_capture(actor: Any, name: str) -> None:
    """Feed a recorded stream through the tracker to the actor, one batch per event."""
    events = capture_events(name)
    root = next(e["properties"]["sessionID"] for e in events if e["type"] == "session.created")
    tracker = Tracker(root)
    for event in events:
        actor.tell(Tracked(root_session_id=root, effects=tuple(tracker.apply(event))))


VERDICT = VerdictReached(
    verdict="done",
    reason="finished with stop",
    exit_code=0,
    summary={"attempts": 1, "cost": 0.0, "transcript": "runs/x.jsonl"},
)
PHASE = PhaseStarted(
    phase="p",
    label="p",
    session_id=ROOT,
    directory="/d",
    agent="build",
    model="test/mock-model",
    server_version="1.18.33",
    server_url="http://x",
)


def test_renderer_rich_mode_colours_the_same_words(color_env):
    actor, out = start("rich")
    tell_capture(actor, "b_tool_read")
    actor.tell(VERDICT)
    settle(actor)
    text = out.getvalue()
    assert "\x1b[" in text
    words = ANSI.sub("", text).splitlines()
    assert "✓ read /srv/fixture/proj/README.md → 2 lines" in words
    assert words[0] == "Reading a file."
    assert words[-4:-2] == ["━━ verdict: done (exit 0)", "   finished with stop"]


def test_renderer_rich_mode_never_interprets_markup(color_env):
    actor, out = start("rich")
    actor.tell(tracked(text_final("[bold]not markup[/bold] :smile:")))
    settle(actor)
    assert ANSI.sub("", out.getvalue()) == "[bold]not markup[/bold] :smile:\n"


def test_renderer_plain_mode_strips_escape_codes_from_tool_output():
    actor, out = start("plain")
    part = {
        "id": "t",
        "type": "tool",
        "tool": "bash",
        "state": {
            "status": "completed",
            "input": {"command": "ls --color"},
            "output": "\x1b[31mred\x1b[0m\r\n",
            "metadata": {"exit": 0},
        },
    }
    effect = PartFinalized(
        session_id=ROOT,
        message_id="m",
        part_id="t",
        part_type="tool",
        part=part,
        text=None,
        role="assistant",
        source="stream",
    )
    actor.tell(tracked(effect))
    settle(actor)
    assert out.getvalue() == "✓ bash ls --color → exit 0\n    red\n"


def test_renderer_plain_mode_matches_the_view_wording():
    text = render_capture("b_tool_read")
    assert "\x1b" not in text
    assert "Done reading.\n" in text


def test_renderer_json_mode_prints_only_json_ending_with_result():
    actor, out = start("json")
    actor.tell(PHASE)
    actor.tell(Notice(level="warning", text="not on stdout"))
    actor.tell(StreamDropped(connection=1, reason="EOF", retry_in=1.0))
    tell_capture(actor, "b_tool_read")
    actor.tell(VERDICT)
    settle(actor)
    lines = out.getvalue().splitlines()
    objects = [json.loads(line) for line in lines]
    assert [o["type"] for o in objects] == [
        "step_start",
        "text",
        "tool_use",
        "step_finish",
        "step_start",
        "text",
        "step_finish",
        "runner.result",
    ]
    assert all(o["timestamp"] == NOW for o in objects[:-1])
    assert objects[-1] == {
        "type": "runner.result",
        "verdict": "done",
        "reason": "finished with stop",
        "exit_code": 0,
        "attempts": 1,
        "cost": 0.0,
        "transcript": "runs/x.jsonl",
    }


def test_renderer_json_mode_reasoning_follows_thinking():
    for thinking, expected in ((False, 0), (True, 1)):
        actor, out = start("json", thinking=thinking)
        tell_capture(actor, "f_reasoning")
        settle(actor)
        kinds = [json.loads(line)["type"] for line in out.getvalue().splitlines()]
        assert kinds.count("reasoning") == expected
        actor.stop()


def test_renderer_flush_ends_an_open_inline_line_once():
    actor, out = start("plain")
    actor.tell(tracked(delta("Hello")))
    actor.proxy().flush().get(timeout=10)
    assert out.getvalue() == "Hello\n"
    actor.proxy().flush().get(timeout=10)
    assert out.getvalue() == "Hello\n"


def test_renderer_stop_flushes_the_open_line():
    actor, out = start("plain")
    actor.tell(tracked(delta("cut short")))
    actor.stop(block=True, timeout=10)
    assert out.getvalue() == "cut short\n"


def test_renderer_uses_injected_clock_for_retry_countdown():
    actor, out = start("plain")
    status = {"type": "retry", "attempt": 3, "message": "busy", "next": NOW + 9001}
    actor.tell(tracked(StatusChanged(session_id=ROOT, status=status)))
    settle(actor)
    assert out.getvalue() == "retrying in 10s, attempt 3: busy\n"


def test_renderer_prefix_mode_prefixes_every_line():
    actor, out = start("plain", prefix="a")
    actor.tell(tracked(delta("Hel"), delta("lo"), text_final("Hello")))
    actor.tell(Notice(level="info", text="next"))
    settle(actor)
    assert out.getvalue() == "[a] Hello\n[a] next\n"


def test_renderer_unexpected_message_is_logged_not_fatal():
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(m.record["message"]), level="WARNING")
    logger.enable("actors")  # the library keeps its logs off unless the app turns them on
    try:
        actor, out = start("plain")
        actor.tell({"surprise": True})
        actor.tell(object())
        actor.tell(tracked(text_final("still here")))
        settle(actor)
    finally:
        logger.disable("actors")
        logger.remove(sink)
    assert actor.is_alive()
    assert out.getvalue() == "still here\n"
    assert len(seen) == 2
    assert "unexpected message {'surprise': True}" in seen[0]


def test_renderer_shows_every_message_type_the_wiring_sends_it():
    routed = {kind for kind, targets in ROUTES.items() if RENDERER in targets}
    assert routed - {Tracked} == set(SHOW)
    for method in SHOW.values():
        assert getattr(TerminalView, method.__name__) is method
        assert not method.__name__.startswith("_")


def test_renderer_skips_a_look_alike_of_a_known_message():
    @dataclass(frozen=True)
    class Notice:  # same name and fields as the record, another type
        level: str = "info"
        text: str = "impostor"

    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(m.record["message"]), level="WARNING")
    logger.enable("actors")
    try:
        actor, out = start("plain")
        actor.tell(Notice())
        settle(actor)
    finally:
        logger.disable("actors")
        logger.remove(sink)
    assert out.getvalue() == ""
    assert len(seen) == 1
    assert "unexpected message" in seen[0]


def test_renderer_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        RendererActor.start(mode="html", out=io.StringIO())


class Terminal(io.StringIO):
    """A StringIO that says it is a terminal (rich mode then keeps a live status line)."""

    def isatty(self) -> bool:
        return True


CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def test_rich_mode_on_a_terminal_keeps_a_status_line_under_the_scrollback(color_env):
    out = Terminal()
    actor = RendererActor.start(mode="rich", out=out, clock_ms=lambda: NOW)
    deltas = ("Hello ", "world.\nSecond ", "line")
    effects = tuple(
        PartDelta(session_id=ROOT, message_id="m", part_id="p", part_type="text", delta=d)
        for d in deltas
    )
    actor.tell(Tracked(root_session_id=ROOT, effects=effects))
    settle(actor)
    drawn = CONTROL.sub("", out.getvalue())
    assert "Hello world." in drawn  # a whole line went to the scrollback
    assert "● writing · 0s · 0 steps · 0 tokens · $0.0000" in drawn  # under it, the status
    actor.stop(timeout=10)
    lines = [line for line in CONTROL.sub("\n", out.getvalue()).splitlines() if line.strip()]
    assert "Second line" in lines  # what was still streaming is printed at the stop


def test_rich_mode_without_a_terminal_prints_no_status_line(color_env):
    actor, out = start("rich")
    actor.tell(tracked(text_final("Hello.")))
    settle(actor)
    actor.stop(timeout=10)
    assert "●" not in out.getvalue()


def test_phases_sharing_a_terminal_keep_no_live_region(color_env):
    out = Terminal()
    actors = [
        RendererActor.start(mode="rich", out=out, clock_ms=lambda: NOW, prefix=name)
        for name in ("a", "b")
    ]
    for actor in actors:
        actor.tell(tracked(text_final("Hello.")))
        settle(actor)
        actor.stop(timeout=10)
    assert "●" not in out.getvalue()
    assert CONTROL.sub("", out.getvalue()).count("Hello.") == 2


def test_parallel_phases_on_a_terminal_share_one_table_and_print_their_verdicts(color_env):
    from actors.live import LiveBoard
    from actors.renderer import rich_console

    out = Terminal()
    board = LiveBoard(rich_console(out), lambda: NOW)
    actors = [
        RendererActor.start(mode="rich", out=out, clock_ms=lambda: NOW, prefix=name, board=board)
        for name in ("alpha", "beta")
    ]
    for actor in actors:
        actor.tell(tracked(text_final("Hello.")))
        actor.tell(VERDICT)
        settle(actor)
        actor.stop(timeout=10)
    board.stop()
    lines = [line.rstrip() for line in CONTROL.sub("\n", out.getvalue()).splitlines()]
    assert "[alpha] ━━ verdict: done (exit 0)" in lines
    assert "[beta] ━━ verdict: done (exit 0)" in lines
    assert "Hello." not in lines  # each phase's full output is in its transcript, not here
    rows = [line.split() for line in lines if line.startswith(("alpha ", "beta "))]
    assert [row[:4] for row in rows[-2:]] == [
        ["alpha", "verdict:", "done", "0s"],
        ["beta", "verdict:", "done", "0s"],
    ]
