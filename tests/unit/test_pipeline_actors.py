"""Tracker, sync, responder and transcript actors with fakes: no sockets, no server."""

from __future__ import annotations

import json
import queue
import threading

import pytest

from actors.responder import ResponderActor
from actors.sync import SyncActor, newer_than
from actors.tracker import TrackerActor
from actors.transcript import TranscriptActor, TranscriptWriter, record_type
from core.errors import ServerUnreachableError
from core.permissions import PermissionPolicy
from core.tracker import PermissionAsked, QuestionAsked, SessionIdle
from messages.pipeline import RequestSync, SetBaseline, SnapshotFetched, Tracked
from messages.records import PermissionAnswered, QuestionRejected, Resynced, VerdictReached
from messages.stream import EventsReceived, StreamConnected
from tests.helpers import CAPTURES

pytestmark = pytest.mark.timeout(20)


def load_capture(name):
    events = []
    for line in (CAPTURES / f"{name}.event.jsonl").open():
        for raw in json.loads(line)["raw"]:
            if raw.startswith("data: "):
                events.append(json.loads(raw[len("data: ") :]))
    return events


def root_of(name):
    snapshot = json.loads((CAPTURES / f"{name}.messages.json").read_text())
    return snapshot[0]["info"]["sessionID"], snapshot


def drain(q, until, timeout=5):
    """Messages from `q` until one satisfies `until` (inclusive)."""
    got = []
    while True:
        message = q.get(timeout=timeout)
        got.append(message)
        if until(message):
            return got


def effects_of(messages):
    return [e for m in messages if isinstance(m, Tracked) for e in m.effects]


def test_tracker_actor_holds_idle_until_the_idle_snapshot_is_merged():
    root, snapshot = root_of("a_basic")
    out, syncs = queue.Queue(), queue.Queue()
    tracker = TrackerActor.start(root_session_id=root, downstream=[out.put], request_sync=syncs.put)
    tracker.tell(EventsReceived(events=tuple(load_capture("a_basic")), connection=1))
    request = syncs.get(timeout=5)
    assert request == RequestSync(session_ids=(root,), reason="idle")
    before = drain(out, lambda m: isinstance(m, Tracked))
    assert not any(isinstance(e, SessionIdle) for e in effects_of(before))
    tracker.tell(
        SnapshotFetched(reason="idle", snapshots=((root, tuple(snapshot)),), root_idle=True)
    )
    after = drain(out, lambda m: any(isinstance(e, SessionIdle) for e in effects_of([m])))
    resynced = [m for m in after if isinstance(m, Resynced)]
    assert resynced == [Resynced(reason="idle", recovered=0)]


def test_tracker_actor_resyncs_on_reconnect_and_recovers_lost_parts():
    root, snapshot = root_of("i_reconnect.after_reconnect")
    out, syncs = queue.Queue(), queue.Queue()
    tracker = TrackerActor.start(root_session_id=root, downstream=[out.put], request_sync=syncs.put)
    tracker.tell(StreamConnected(connection=2))
    assert syncs.get(timeout=5).reason == "reconnect"
    tracker.tell(
        SnapshotFetched(reason="reconnect", snapshots=((root, tuple(snapshot)),), root_idle=True)
    )
    got = drain(out, lambda m: isinstance(m, Tracked))
    (resynced,) = [m for m in got if isinstance(m, Resynced)]
    assert resynced.recovered == sum(len(m["parts"]) for m in snapshot)
    assert SessionIdle(session_id=root) in effects_of(got)


def test_tracker_actor_keeps_only_the_tree_raw_events():
    root, _ = root_of("a_basic")
    out = queue.Queue()
    tracker = TrackerActor.start(
        root_session_id=root, downstream=[out.put], request_sync=queue.Queue().put
    )
    stranger = {
        "type": "session.status",
        "properties": {"sessionID": "ses_other", "status": {"type": "busy"}},
    }
    mine = {"type": "session.status", "properties": {"sessionID": root, "status": {"type": "busy"}}}
    tracker.tell(EventsReceived(events=(stranger, mine), connection=1))
    message = out.get(timeout=5)
    assert message.raw == (mine,)


class FakeClient:
    """Records calls; answers from canned data or raises."""

    def __init__(self, *, messages=None, status=None, fail=None):
        self._messages = messages or {}
        self._status = status or {}
        self._fail = fail
        self.calls = []
        self.called = threading.Event()

    def status(self):
        if self._fail:
            raise self._fail
        return self._status

    def messages(self, session_id, limit=None):
        self.calls.append(("messages", session_id, limit))
        messages = self._messages.get(session_id, [])
        return messages[-limit:] if limit else messages

    def reply_permission(self, request_id, reply, *, session_id, message=None):
        self.calls.append(("permission", request_id, reply, session_id, message))
        return True

    def reject_question(self, request_id):
        self.calls.append(("question", request_id))
        return True


def msg(message_id):
    return {"info": {"id": message_id, "role": "assistant"}, "parts": []}


def test_newer_than_filters_by_message_id_order():
    messages = [msg("msg_001"), msg("msg_005"), msg("msg_010")]
    assert newer_than(messages, None) == messages
    assert newer_than(messages, "msg_005") == [msg("msg_010")]


def test_sync_actor_applies_the_baseline_to_the_root_only():
    client = FakeClient(
        messages={"ses_r": [msg("msg_1"), msg("msg_3")], "ses_c": [msg("msg_2")]},
        status={"ses_r": {"type": "busy"}},
    )
    replies = queue.Queue()
    sync = SyncActor.start(client=client, root_session_id="ses_r", reply_to=replies.put)
    sync.tell(SetBaseline(message_id="msg_1"))
    sync.tell(RequestSync(session_ids=("ses_c", "ses_r"), reason="idle"))
    reply = replies.get(timeout=5)
    assert reply.snapshots == (("ses_c", (msg("msg_2"),)), ("ses_r", (msg("msg_3"),)))
    assert reply.root_idle is False
    assert reply.error is None
    assert ("messages", "ses_r", 50) in client.calls  # one short page was enough


@pytest.mark.parametrize(
    ("baseline", "calls"),
    [
        ("msg_000", [("messages", "ses_r", 50), ("messages", "ses_r", None)]),
        ("msg_100", [("messages", "ses_r", 50)]),
    ],
)
def test_sync_actor_fetches_everything_only_when_the_page_misses_the_baseline(baseline, calls):
    history = [msg(f"msg_{i:03d}") for i in range(1, 121)]
    client = FakeClient(messages={"ses_r": history})
    replies = queue.Queue()
    sync = SyncActor.start(client=client, root_session_id="ses_r", reply_to=replies.put)
    sync.tell(SetBaseline(message_id=baseline))
    sync.tell(RequestSync(session_ids=("ses_r",), reason="idle"))
    ((_, messages),) = replies.get(timeout=5).snapshots
    assert messages == tuple(m for m in history if m["info"]["id"] > baseline)
    assert [c for c in client.calls if c[0] == "messages"] == calls


def test_sync_actor_reports_failures_instead_of_raising():
    client = FakeClient(fail=ServerUnreachableError("GET /session/status: cannot reach x"))
    replies = queue.Queue()
    sync = SyncActor.start(client=client, root_session_id="ses_r", reply_to=replies.put)
    sync.tell(RequestSync(session_ids=("ses_r",), reason="idle"))
    reply = replies.get(timeout=5)
    assert reply.error == "GET /session/status: cannot reach x"
    assert reply.snapshots == ()


def test_responder_answers_each_request_once_by_policy():
    client = FakeClient()
    published = queue.Queue()
    responder = ResponderActor.start(
        client=client, policy=PermissionPolicy(feedback="no"), publish=published.put
    )
    ask = PermissionAsked(
        session_id="ses_c", request={"id": "per_1", "permission": "bash", "patterns": ["ls"]}
    )
    question = QuestionAsked(
        session_id="ses_r", request={"id": "que_1", "questions": [{"question": "Go?"}]}
    )
    responder.tell(Tracked(root_session_id="ses_r", effects=(ask, ask, question)))
    answers = {type(published.get(timeout=5)) for _ in range(2)}
    assert answers == {PermissionAnswered, QuestionRejected}
    assert client.calls == [("permission", "per_1", "reject", "ses_c", "no"), ("question", "que_1")]
    assert published.empty()


def test_transcript_writes_header_raw_events_and_records(tmp_path):
    path = tmp_path / "t" / "run.jsonl"
    writer = TranscriptWriter(str(path), {"phase": "p", "session_id": "ses_1"})
    transcript = TranscriptActor.start(writer=writer)
    event = {"type": "session.idle", "properties": {"sessionID": "ses_1"}}
    transcript.tell(Tracked(root_session_id="ses_1", effects=(), raw=(event,)))
    transcript.tell(VerdictReached(verdict="done", reason="ok", exit_code=0))
    transcript.stop()
    lines = [json.loads(line) for line in path.open()]
    assert lines[0]["type"] == "runner.header"
    assert (lines[0]["phase"], lines[0]["session_id"]) == ("p", "ses_1")
    assert lines[1] == event
    assert lines[2]["type"] == "runner.verdict_reached"
    assert (lines[2]["verdict"], lines[2]["exit_code"]) == ("done", 0)


def test_record_type_is_snake_case():
    assert record_type(StreamConnected(connection=1)) == "runner.stream_connected"
