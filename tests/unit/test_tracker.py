"""The state tracker, fed hand-written histories; each asserts the whole list of effects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

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
    SnapshotShapeError,
    StatusChanged,
    Tracker,
    Unknown,
    recovered_messages,
)

pytestmark = pytest.mark.timeout(30)

ROOT = "ses_root"
CHILD = "ses_child"
OTHER = "ses_other"
MSG = "msg_a1"  # an assistant message of ROOT
USER_MSG = "msg_u1"


# -- builders -------------------------------------------------------------------------------------


def ev(etype: str, **props: Any) -> dict[str, Any]:
    """A `/event` object."""
    return {"id": "evt_x", "type": etype, "properties": props}


def info(mid: str = MSG, role: str = "assistant", sid: str = ROOT, **extra: Any) -> dict[str, Any]:
    """A message info."""
    return {"id": mid, "sessionID": sid, "role": role, "time": {"created": 1}, **extra}


def msg(mid: str = MSG, role: str = "assistant", sid: str = ROOT, **extra: Any) -> dict[str, Any]:
    """A `message.updated` event."""
    return ev("message.updated", sessionID=sid, info=info(mid, role, sid, **extra))


def text(pid: str, body: str | None, *, end: bool = True, kind: str = "text", **kw: Any) -> dict:
    """A text (or reasoning) part; `end=False` is a version still streaming."""
    part = {"id": pid, "sessionID": kw.get("sid", ROOT), "messageID": kw.get("mid", MSG)}
    part |= {"type": kind, "time": {"start": 1} | ({"end": 2} if end else {})}
    return part if body is None else part | {"text": body}


def tool(pid: str, status: str, *, sid: str = ROOT, **state: Any) -> dict[str, Any]:
    """A tool part in `status`."""
    return {
        "id": pid,
        "sessionID": sid,
        "messageID": MSG,
        "type": "tool",
        "callID": "call_1",
        "tool": "read",
        "state": {"status": status, "input": {}, **state},
    }


def plain(pid: str, kind: str, sid: str = ROOT) -> dict[str, Any]:
    """A non-streaming part (step-start, step-finish, patch, ...)."""
    return {"id": pid, "sessionID": sid, "messageID": MSG, "type": kind}


def upd(part: dict[str, Any]) -> dict[str, Any]:
    """A `message.part.updated` event."""
    return ev("message.part.updated", sessionID=part["sessionID"], part=part, time=1)


def delta(pid: str, chunk: str, *, sid: str = ROOT, mid: str = MSG) -> dict[str, Any]:
    """A `message.part.delta` event."""
    return ev(
        "message.part.delta", sessionID=sid, messageID=mid, partID=pid, field="text", delta=chunk
    )


def status(kind: str, sid: str = ROOT, **extra: Any) -> dict[str, Any]:
    """A `session.status` event."""
    return ev("session.status", sessionID=sid, status={"type": kind, **extra})


def session(etype: str, sid: str, parent: str | None) -> dict[str, Any]:
    """A `session.created` / `session.updated` event."""
    data = {"id": sid, "title": "t"} | ({"parentID": parent} if parent else {})
    return ev(etype, sessionID=sid, info=data)


@dataclass(frozen=True)
class Snap:
    """A history step: apply a message snapshot instead of an event."""

    messages: list[dict[str, Any]]
    session_id: str = ROOT


@dataclass(frozen=True)
class Gap:
    """A history step: events may have been lost here (`Tracker.gap`)."""


def snap_msg(msg_info: dict[str, Any], *parts: dict[str, Any]) -> dict[str, Any]:
    """One `[{info, parts}]` entry of a snapshot."""
    return {"info": msg_info, "parts": list(parts)}


def fin(part: dict[str, Any], role: str | None = "assistant", source: str = "stream", **kw: Any):
    """The `PartFinalized` expected for `part`."""
    body = part.get("text") if part["type"] in ("text", "reasoning") else None
    return PartFinalized(
        session_id=kw.get("sid", part["sessionID"]),
        message_id=part["messageID"],
        part_id=part["id"],
        part_type=part["type"],
        part=part,
        text=kw.get("text", body),
        role=role,
        source=source,  # type: ignore[arg-type]
        recovered=kw.get("recovered", source == "snapshot"),
    )


def dlt(
    pid: str, chunk: str, kind: str | None = "text", sid: str = ROOT, gapped: bool = False
) -> PartDelta:
    """The `PartDelta` expected for a delta."""
    return PartDelta(
        session_id=sid, message_id=MSG, part_id=pid, part_type=kind, delta=chunk, gapped=gapped
    )


def mu(mid: str = MSG, role: str = "assistant", sid: str = ROOT, **extra: Any) -> MessageUpdated:
    """The `MessageUpdated` expected for `msg(...)`."""
    return MessageUpdated(session_id=sid, info=info(mid, role, sid, **extra))


def run(steps: list[Any], root: str = ROOT) -> tuple[Tracker, list[Any]]:
    """Feed a history to a fresh tracker; return it and every effect, in order."""
    tracker = Tracker(root)
    effects: list[Any] = []
    for step in steps:
        if isinstance(step, Snap):
            effects += tracker.apply_snapshot(step.messages, session_id=step.session_id)
        elif isinstance(step, Gap):
            tracker.gap()
        else:
            effects += tracker.apply(step)
    return tracker, effects


# -- histories ------------------------------------------------------------------------------------

T_OPEN, T_FULL = text("prt_t", "", end=False), text("prt_t", "Hello world!")
R_OPEN, R_FULL = (
    text("prt_r", "", end=False, kind="reasoning"),
    text("prt_r", "Hm.", kind="reasoning"),
)
TOOL_DONE = tool("prt_tool", "completed", output="file text", title="README.md")
TOOL_ERR = tool("prt_tool", "error", error="The user rejected permission")
USER_TEXT = {"id": "prt_u", "sessionID": ROOT, "messageID": USER_MSG, "type": "text", "text": "Hi"}
STEPS = [plain("prt_s1", "step-start"), plain("prt_s2", "step-finish"), plain("prt_p", "patch")]
CHILD_TEXT = text("prt_c", "child says", sid=CHILD)
PERMISSION = {"id": "per_1", "sessionID": CHILD, "permission": "bash", "patterns": ["echo *"]}

HISTORIES = {
    "delta_then_update_emits_text_once": (
        [msg(), upd(T_OPEN), delta("prt_t", "Hello"), delta("prt_t", " world!"), upd(T_FULL)],
        [mu(), dlt("prt_t", "Hello"), dlt("prt_t", " world!"), fin(T_FULL)],
    ),
    "update_before_any_delta_emits_once": (
        [msg(), upd(T_FULL), delta("prt_t", "late"), upd(T_FULL)],
        [mu(), fin(T_FULL)],
    ),
    "final_text_prefers_update_over_deltas": (
        [upd(T_OPEN), delta("prt_t", "Hello wor"), upd(T_FULL)],
        [dlt("prt_t", "Hello wor"), fin(T_FULL, role=None)],
    ),
    "final_update_without_text_falls_back_to_deltas": (
        [upd(T_OPEN), delta("prt_t", "ab"), delta("prt_t", "c"), upd(text("prt_t", None))],
        [dlt("prt_t", "ab"), dlt("prt_t", "c"), fin(text("prt_t", None), role=None, text="abc")],
    ),
    "delta_before_update_has_unknown_type": (
        [delta("prt_t", "Hel"), upd(T_OPEN), delta("prt_t", "lo"), upd(T_FULL)],
        [
            dlt("prt_t", "Hel", kind=None, gapped=True),  # its opening update was lost
            dlt("prt_t", "lo", gapped=True),
            fin(T_FULL, role=None, recovered=True),
        ],
    ),
    "a_gap_marks_the_open_parts_only": (
        [
            msg(),
            upd(T_OPEN),
            delta("prt_t", "He"),
            Gap(),
            delta("prt_t", "llo"),
            upd(T_FULL),
            upd(R_OPEN),
            delta("prt_r", "Hm."),
            upd(R_FULL),
        ],
        [
            mu(),
            dlt("prt_t", "He"),
            dlt("prt_t", "llo", gapped=True),
            fin(T_FULL, recovered=True),
            dlt("prt_r", "Hm.", kind="reasoning"),  # opened after the gap: whole
            fin(R_FULL),
        ],
    ),
    "a_snapshot_that_shows_what_the_stream_did_marks_nothing": (
        [
            msg(),
            upd(T_OPEN),
            delta("prt_t", "He"),
            Snap([snap_msg(info(), text("prt_t", "He", end=False))]),
            delta("prt_t", "llo"),
            upd(T_FULL),
        ],
        [mu(), dlt("prt_t", "He"), dlt("prt_t", "llo"), fin(T_FULL)],
    ),
    "a_snapshot_ahead_of_the_stream_marks_the_part": (
        [
            msg(),
            upd(T_OPEN),
            delta("prt_t", "He"),
            Snap([snap_msg(info(), text("prt_t", "Hell", end=False))]),
            delta("prt_t", "o"),
            upd(T_FULL),
        ],
        [mu(), dlt("prt_t", "He"), dlt("prt_t", "o", gapped=True), fin(T_FULL, recovered=True)],
    ),
    "reasoning_streams_like_text": (
        [msg(), upd(R_OPEN), delta("prt_r", "Hm."), upd(R_FULL)],
        [mu(), dlt("prt_r", "Hm.", kind="reasoning"), fin(R_FULL)],
    ),
    "tool_pending_running_completed_emits_once": (
        [
            msg(),
            upd(tool("prt_tool", "pending")),
            upd(tool("prt_tool", "running")),
            upd(TOOL_DONE),
            upd(TOOL_DONE),
        ],
        [mu(), fin(TOOL_DONE)],
    ),
    "tool_error_is_final": (
        [msg(), upd(tool("prt_tool", "running")), upd(TOOL_ERR), upd(TOOL_DONE)],
        [mu(), fin(TOOL_ERR)],
    ),
    "step_and_patch_parts_are_final_at_once": (
        [msg(), *map(upd, STEPS), *map(upd, STEPS)],
        [mu(), *(fin(p) for p in STEPS)],
    ),
    "user_prompt_part_is_final_at_once_with_role_user": (
        [msg(USER_MSG, "user"), upd(USER_TEXT), upd(USER_TEXT)],
        [mu(USER_MSG, "user"), fin(USER_TEXT, role="user")],
    ),
    "user_text_with_open_time_is_still_final": (
        [msg(USER_MSG, "user"), upd(text("prt_u2", "Hi", end=False, mid=USER_MSG))],
        [mu(USER_MSG, "user"), fin(text("prt_u2", "Hi", end=False, mid=USER_MSG), role="user")],
    ),
    "snapshot_after_stream_emits_nothing_new": (
        [
            msg(),
            upd(T_OPEN),
            delta("prt_t", "Hello"),
            upd(T_FULL),
            upd(TOOL_DONE),
            Snap([snap_msg(info(), T_FULL, TOOL_DONE)]),
        ],
        [mu(), dlt("prt_t", "Hello"), fin(T_FULL), fin(TOOL_DONE)],
    ),
    "snapshot_before_stream_then_stream_emits_nothing": (
        [
            Snap([snap_msg(info(), T_FULL, TOOL_DONE)]),
            msg(),
            upd(T_OPEN),
            delta("prt_t", "x"),
            upd(T_FULL),
            upd(TOOL_DONE),
        ],
        [
            fin(T_FULL, source="snapshot"),
            fin(TOOL_DONE, source="snapshot"),
            MessageUpdated(session_id=ROOT, info=info(), source="snapshot"),
            mu(),
        ],
    ),
    "snapshot_fills_parts_lost_in_a_drop": (
        [
            msg(),
            upd(T_OPEN),
            delta("prt_t", "Hel"),
            Snap([snap_msg(info(finish="stop"), STEPS[0], T_FULL, STEPS[1])]),
            delta("prt_t", "lo"),
            upd(T_FULL),
            upd(STEPS[1]),
        ],
        [
            mu(),
            dlt("prt_t", "Hel"),
            fin(STEPS[0], source="snapshot"),
            fin(T_FULL, source="snapshot"),
            fin(STEPS[1], source="snapshot"),
            MessageUpdated(session_id=ROOT, info=info(finish="stop"), source="snapshot"),
        ],
    ),
    "snapshot_keeps_unfinished_parts_for_the_stream": (
        [
            Snap([snap_msg(info(), T_OPEN, tool("prt_tool", "running"))]),
            delta("prt_t", "Hi"),
            upd(TOOL_DONE),
            upd(T_FULL),
        ],
        [
            MessageUpdated(session_id=ROOT, info=info(), source="snapshot"),
            dlt("prt_t", "Hi", gapped=True),  # its opening was not seen on the stream
            fin(TOOL_DONE),
            fin(T_FULL, recovered=True),
        ],
    ),
    "snapshot_gives_user_parts_their_role": (
        [Snap([snap_msg(info(USER_MSG, "user"), USER_TEXT)])],
        [
            fin(USER_TEXT, role="user", source="snapshot"),
            MessageUpdated(session_id=ROOT, info=info(USER_MSG, "user"), source="snapshot"),
        ],
    ),
    "snapshot_of_a_session_outside_the_tree_is_ignored": (
        [Snap([snap_msg(info(sid=OTHER), text("prt_o", "x", sid=OTHER))], OTHER)],
        [],
    ),
    "idle_passes_every_time_and_busy_repeats_collapse": (
        [
            status("busy"),
            status("busy"),
            status("retry", attempt=1, message="429", next=5),
            status("retry", attempt=2, message="429", next=9),
            status("busy"),
            status("busy"),
            status("idle"),
            ev("session.idle", sessionID=ROOT),
            status("idle"),
            ev("session.idle", sessionID=ROOT),
            status("busy"),
        ],
        [
            StatusChanged(session_id=ROOT, status={"type": "busy"}),
            StatusChanged(
                session_id=ROOT, status={"type": "retry", "attempt": 1, "message": "429", "next": 5}
            ),
            StatusChanged(
                session_id=ROOT, status={"type": "retry", "attempt": 2, "message": "429", "next": 9}
            ),
            StatusChanged(session_id=ROOT, status={"type": "busy"}),
            StatusChanged(session_id=ROOT, status={"type": "idle"}),
            SessionIdle(session_id=ROOT),
            StatusChanged(session_id=ROOT, status={"type": "idle"}),
            SessionIdle(session_id=ROOT),
            StatusChanged(session_id=ROOT, status={"type": "busy"}),
        ],
    ),
    "child_session_is_followed_and_its_parts_emitted": (
        [
            session("session.created", CHILD, ROOT),
            upd(CHILD_TEXT),
            status("busy", CHILD),
            ev("permission.asked", **PERMISSION),
            session("session.updated", CHILD, ROOT),
            session("session.created", "ses_grand", CHILD),
            ev("session.idle", sessionID=CHILD),
        ],
        [
            ChildSession(
                session_id=CHILD,
                parent_id=ROOT,
                info={"id": CHILD, "title": "t"} | {"parentID": ROOT},
            ),
            fin(CHILD_TEXT, role=None),
            StatusChanged(session_id=CHILD, status={"type": "busy"}),
            PermissionAsked(session_id=CHILD, request=PERMISSION),
            Passthrough(
                event_type="session.updated",
                session_id=CHILD,
                event=session("session.updated", CHILD, ROOT),
            ),
            ChildSession(
                session_id="ses_grand",
                parent_id=CHILD,
                info={"id": "ses_grand", "title": "t", "parentID": CHILD},
            ),
            SessionIdle(session_id=CHILD),
        ],
    ),
    "child_joins_on_session_updated_too": (
        [session("session.updated", CHILD, ROOT), delta("prt_c", "x", sid=CHILD)],
        [
            ChildSession(
                session_id=CHILD,
                parent_id=ROOT,
                info={"id": CHILD, "title": "t"} | {"parentID": ROOT},
            ),
            dlt("prt_c", "x", kind=None, sid=CHILD, gapped=True),
        ],
    ),
    "unrelated_session_is_ignored": (
        [
            session("session.created", OTHER, None),
            session("session.created", "ses_o2", OTHER),
            msg(sid=OTHER),
            upd(text("prt_o", "x", sid=OTHER)),
            delta("prt_o", "x", sid=OTHER),
            status("busy", OTHER),
            ev("session.idle", sessionID=OTHER),
            ev("session.error", sessionID=OTHER, error={"name": "E"}),
            ev("permission.asked", **(PERMISSION | {"sessionID": OTHER})),
            ev("future.event", sessionID=OTHER),
        ],
        [],
    ),
    "noise_is_silent_and_unknown_types_are_reported": (
        [
            ev("server.connected"),
            ev("server.heartbeat"),
            ev("plugin.added", id="x"),
            ev("file.watcher.updated", file="f", event="add"),
            ev("catalog.updated"),
            ev("session.next.text.delta", sessionID=ROOT),
            ev("brand.new", sessionID=ROOT),
            ev("global.thing"),
        ],
        [
            Unknown(event_type="brand.new", event=ev("brand.new", sessionID=ROOT)),
            Unknown(event_type="global.thing", event=ev("global.thing")),
        ],
    ),
    "errors_questions_and_tree_events": (
        [
            ev("session.error", sessionID=ROOT, error={"name": "APIError"}),
            ev("session.error"),
            ev("question.asked", sessionID=ROOT, id="que_1", questions=[]),
            ev("todo.updated", sessionID=ROOT, todos=[]),
        ],
        [
            SessionError(session_id=ROOT, error={"name": "APIError"}),
            SessionError(session_id=None, error={}),
            QuestionAsked(
                session_id=ROOT, request={"sessionID": ROOT, "id": "que_1", "questions": []}
            ),
            Passthrough(
                event_type="todo.updated",
                session_id=ROOT,
                event=ev("todo.updated", sessionID=ROOT, todos=[]),
            ),
        ],
    ),
    "malformed_events_are_reported_not_raised": (
        [
            "not a dict",
            {"type": "x"},
            ev("message.part.updated", sessionID=ROOT, part="p"),
            ev("message.part.delta", sessionID=ROOT, partID="p"),
            ev("message.updated", sessionID=ROOT),
            ev("session.status", sessionID=ROOT, status="busy"),
        ],
        [
            Unknown(event_type=None, event="not a dict"),
            Unknown(event_type=None, event={"type": "x"}),
            Unknown(
                event_type="message.part.updated",
                event=ev("message.part.updated", sessionID=ROOT, part="p"),
            ),
            Unknown(
                event_type="message.part.delta",
                event=ev("message.part.delta", sessionID=ROOT, partID="p"),
            ),
            Unknown(event_type="message.updated", event=ev("message.updated", sessionID=ROOT)),
            Unknown(
                event_type="session.status",
                event=ev("session.status", sessionID=ROOT, status="busy"),
            ),
        ],
    ),
}


@pytest.mark.parametrize(("steps", "expected"), HISTORIES.values(), ids=HISTORIES.keys())
def test_tracker_history(steps: list[Any], expected: list[Any]) -> None:
    tracker, effects = run(steps)
    assert effects == expected
    finalized = [e.part_id for e in effects if isinstance(e, PartFinalized)]
    assert len(finalized) == len(set(finalized))
    assert set(finalized) <= tracker.emitted_part_ids


def test_tracker_drops_buffers_once_parts_are_final() -> None:
    steps = [msg(), upd(T_OPEN), delta("prt_t", "a"), upd(R_OPEN), delta("prt_r", "b")]
    steps += [upd(tool("prt_tool", "running"))]
    tracker, _ = run(steps)
    assert tracker.open_part_ids == {"prt_t", "prt_r", "prt_tool"}
    assert tracker.pending_text("prt_t") == "a"
    for step in [upd(T_FULL), upd(R_FULL), upd(TOOL_DONE), delta("prt_t", "late")]:
        tracker.apply(step)
    assert tracker.open_part_ids == frozenset()
    assert tracker.pending_text("prt_t") is None
    assert tracker.emitted_part_ids == {"prt_t", "prt_r", "prt_tool"}


def test_tracker_part_removed_forgets_the_open_part() -> None:
    tracker, effects = run(
        [upd(T_OPEN), ev("message.part.removed", sessionID=ROOT, partID="prt_t")]
    )
    assert tracker.open_part_ids == frozenset()
    assert [type(e) for e in effects] == [Passthrough]


def test_tracker_memory_stays_bounded_over_many_parts() -> None:
    tracker = Tracker(ROOT)
    for i in range(2000):
        pid = f"prt_{i}"
        tracker.apply(upd(text(pid, "", end=False)))
        for chunk in ("a", "b", "c"):
            tracker.apply(delta(pid, chunk))
        assert tracker.apply(upd(text(pid, "abc")))[0].text == "abc"
    assert tracker.open_part_ids == frozenset()
    assert len(tracker.emitted_part_ids) == 2000


def test_tracker_session_ids_and_roles() -> None:
    tracker, _ = run([session("session.created", CHILD, ROOT), msg(USER_MSG, "user")])
    assert tracker.session_ids == {ROOT, CHILD}
    assert tracker.role_of(USER_MSG) == "user"
    assert tracker.role_of("msg_unknown") is None


@pytest.mark.parametrize(
    "snapshot",
    [
        {"not": "a list"},
        ["x"],
        [{"info": {"id": MSG}}],
        [{"info": {}, "parts": []}],
        [{"info": {"id": MSG}, "parts": [{"type": "text"}]}],
    ],
)
def test_tracker_rejects_malformed_snapshots(snapshot: Any) -> None:
    with pytest.raises(SnapshotShapeError, match="snapshot of ses_root"):
        Tracker(ROOT).apply_snapshot(snapshot, session_id=ROOT)


def test_message_infos_are_not_kept_whole():
    """Memory stays bounded: 2,000 messages with 10 KB infos retain far less than 20 MB."""
    import gc
    import tracemalloc

    tracker = Tracker("ses_root")
    bulky = "x" * 10_000
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    events = [
        {
            "type": "message.updated",
            "properties": {
                "sessionID": "ses_root",
                "info": {"id": f"msg_{i:05d}", "role": "assistant", "summary": bulky + str(i)},
            },
        }
        for i in range(2000)
    ]
    for event in events:
        tracker.apply(event)
    del events
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert retained < 1_000_000, retained
    assert tracker.role_of("msg_01999") == "assistant"


def test_a_part_streamed_in_many_deltas_keeps_few_chunks_and_the_exact_text():
    from core._chunks import COMPACT_EVERY

    tracker = Tracker(ROOT)
    deltas = [f"w{i} " for i in range(COMPACT_EVERY * 3 + 7)]
    for delta in deltas:
        tracker.apply(
            {
                "type": "message.part.delta",
                "properties": {
                    "sessionID": ROOT,
                    "messageID": "msg_2",
                    "partID": "prt_big",
                    "field": "text",
                    "delta": delta,
                },
            }
        )
    assert tracker._open["prt_big"].chunks.pieces < COMPACT_EVERY
    assert tracker.pending_text("prt_big") == "".join(deltas)


def test_what_a_snapshot_told_makes_the_same_effects_on_a_tracker_that_saw_the_same():
    seen = [msg(), upd(T_OPEN), delta("prt_t", "He"), upd(tool("prt_tool", "running"))]
    snapshot = [
        snap_msg(info(finish="tool-calls"), T_FULL, TOOL_DONE),
        snap_msg(info("msg_a2"), text("prt_2", "Next", end=False)),
    ]
    live = Tracker(ROOT)
    for event in seen:
        live.apply(event)
    before = live.emitted_part_ids
    effects = live.apply_snapshot(snapshot, session_id=ROOT)
    told = recovered_messages(snapshot, before, effects)
    replay = Tracker(ROOT)
    for event in seen:
        replay.apply(event)
    assert replay.apply_snapshot(list(told), session_id=ROOT) == effects
    assert replay.open_part_ids == live.open_part_ids == {"prt_2"}
    # what the live tracker already had final is left out
    assert recovered_messages(snapshot, live.emitted_part_ids, []) == (
        {"info": snapshot[1]["info"], "parts": snapshot[1]["parts"]},
    )
