"""Tracker, sync, responder and transcript actors with fakes: no sockets, no server."""

from __future__ import annotations

import json
import queue
import threading

import pykka
import pytest
import tenacity

from actors.responder import REPLY_ATTEMPTS, ResponderActor
from actors.sync import SyncActor, newer_than
from actors.tracker import TrackerActor
from actors.transcript import TranscriptActor, record_type
from core.errors import ServerUnreachableError, UpstreamHTTPError
from core.permissions import PermissionPolicy
from core.tracker import PermissionAsked, QuestionAsked, SessionIdle
from messages.control import EndPhase
from messages.pipeline import RequestSync, SetBaseline, SnapshotFetched, Tracked
from messages.records import (
    Notice,
    PermissionAnswered,
    PhaseStarted,
    QuestionRejected,
    Resynced,
    StreamGap,
    VerdictReached,
)
from messages.stream import (
    EventsLost,
    EventsReceived,
    StreamConnected,
    StreamDropped,
    StreamFailed,
)
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


class Split:
    """The router's part in these tests: sync requests to one queue, the rest to another."""

    def __init__(self):
        self.out, self.syncs = queue.Queue(), queue.Queue()

    def __call__(self, message):
        (self.syncs if isinstance(message, RequestSync) else self.out).put(message)


def start_tracker(root):
    split = Split()
    return TrackerActor.start(root_session_id=root, publish=split), split.out, split.syncs


def test_tracker_actor_holds_idle_until_the_idle_snapshot_is_merged():
    root, snapshot = root_of("a_basic")
    tracker, out, syncs = start_tracker(root)
    tracker.tell(EventsReceived(events=tuple(load_capture("a_basic")), connection=1, size=100))
    request = syncs.get(timeout=5)
    assert request == RequestSync(session_ids=(root,), reason="idle")
    before = drain(out, lambda m: isinstance(m, Tracked))
    assert not any(isinstance(e, SessionIdle) for e in effects_of(before))
    tracker.tell(
        SnapshotFetched(reason="idle", snapshots=((root, tuple(snapshot)),), root_idle=True)
    )
    after = drain(out, lambda m: any(isinstance(e, SessionIdle) for e in effects_of([m])))
    (resynced,) = [m for m in after if isinstance(m, Resynced)]
    assert resynced == Resynced(reason="idle", recovered=0, time_ms=resynced.time_ms)
    assert resynced.time_ms == after[-1].time_ms > 0  # its effects' batch: one time


def test_tracker_actor_resyncs_on_reconnect_and_recovers_lost_parts():
    root, snapshot = root_of("i_reconnect.after_reconnect")
    tracker, out, syncs = start_tracker(root)
    tracker.tell(StreamConnected(connection=4))  # joined a shared stream: nothing was lost
    tracker.tell(StreamConnected(connection=5))
    assert syncs.get(timeout=5).reason == "reconnect"
    assert syncs.empty()
    assert out.get(timeout=5) == StreamConnected(connection=4)  # passed on
    assert out.get(timeout=5) == StreamConnected(connection=5)
    assert out.get(timeout=5) == StreamGap(reason="reconnect")  # for the transcript
    tracker.tell(
        SnapshotFetched(reason="reconnect", snapshots=((root, tuple(snapshot)),), root_idle=True)
    )
    got = drain(out, lambda m: isinstance(m, Tracked))
    (resynced,) = [m for m in got if isinstance(m, Resynced)]
    assert resynced.recovered == sum(len(m["parts"]) for m in snapshot)
    assert resynced.messages == ((root, tuple(snapshot)),)  # all of it was news
    assert SessionIdle(session_id=root) in effects_of(got)
    assert got[-1].time_ms > 0  # stamped: the time every output gives its effects
    assert resynced.time_ms == got[-1].time_ms  # the time `show` merges the messages at


def test_tracker_actor_keeps_only_the_tree_raw_events():
    root, _ = root_of("a_basic")
    tracker, out, _ = start_tracker(root)
    stranger = {
        "type": "session.status",
        "properties": {"sessionID": "ses_other", "status": {"type": "busy"}},
    }
    mine = {"type": "session.status", "properties": {"sessionID": root, "status": {"type": "busy"}}}
    tracker.tell(EventsReceived(events=(stranger, mine), connection=1, size=321))
    message = out.get(timeout=5)
    assert message.raw == (mine,)
    assert message.size == 321  # the batch's weight follows it downstream


def test_tracker_actor_keeps_the_received_json_of_the_events_it_forwards():
    root, _ = root_of("a_basic")
    tracker, out, _ = start_tracker(root)
    stranger = {"type": "session.status", "properties": {"sessionID": "ses_other"}}
    mine = {"type": "session.status", "properties": {"sessionID": root, "status": {"type": "busy"}}}
    texts = ("<stranger's text>", '{"type":"session.status"}')
    tracker.tell(EventsReceived(events=(stranger, mine), texts=texts, connection=1))
    message = out.get(timeout=5)
    assert (message.raw, message.raw_json) == ((mine,), ('{"type":"session.status"}',))


def test_transcript_writes_received_json_as_it_came(tmp_path):
    path = tmp_path / "run.jsonl"
    transcript = TranscriptActor.start(path=str(path), header={"phase": "p"})
    event = {"type": "session.idle", "properties": {"sessionID": "ses_1"}}
    text = '{"type":"session.idle","properties":{"sessionID":"ses_1"}}'
    transcript.tell(Tracked(root_session_id="ses_1", effects=(), raw=(event,), raw_json=(text,)))
    multiline = '{"type":"session.idle",\n"properties":{}}'  # a frame of two `data:` lines
    other = {"type": "session.idle", "properties": {}}
    transcript.tell(
        Tracked(root_session_id="ses_1", effects=(), raw=(other,), raw_json=(multiline,))
    )
    transcript.stop()
    lines = path.read_text().splitlines()
    assert lines[1] == text
    assert json.loads(lines[2]) == other  # written again as one line
    assert len(lines) == 3


def test_transcript_writes_the_time_of_a_batch_with_effects_when_it_moved_on(tmp_path):
    path = tmp_path / "run.jsonl"
    transcript = TranscriptActor.start(path=str(path), header={"phase": "p"})
    event = {"type": "session.idle", "properties": {"sessionID": "ses_1"}}
    idle = SessionIdle(session_id="ses_1")
    for effects, time_ms in (((idle,), 1000), ((idle,), 1000), ((), 2000), ((idle,), 3000)):
        transcript.tell(
            Tracked(root_session_id="ses_1", effects=effects, raw=(event,), time_ms=time_ms)
        )
    transcript.stop()
    lines = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    clock = {"type": "runner.clock"}
    assert lines == [clock | {"ms": 1000}, event, event, event, clock | {"ms": 3000}, event]


def test_tracker_actor_passes_stream_news_on_in_order_with_its_batches():
    root = "ses_root"
    tracker, out, _ = start_tracker(root)
    busy = {"type": "session.status", "properties": {"sessionID": root, "status": {"type": "busy"}}}
    dropped = StreamDropped(connection=1, reason="end of stream", retry_in=0.1)
    tracker.tell(EventsReceived(events=(busy,), connection=1))
    tracker.tell(dropped)
    tracker.tell(EventsReceived(events=(busy,), connection=2))
    got = [out.get(timeout=5) for _ in range(3)]
    assert [type(m) for m in got] == [Tracked, StreamDropped, Tracked]
    assert got[1] == dropped


def test_tracker_actor_resyncs_what_its_inbox_dropped():
    root = "ses_root"
    busy = {"type": "session.status", "properties": {"sessionID": root, "status": {"type": "busy"}}}
    split, gate, blocked = Split(), threading.Event(), threading.Event()

    def publish(message):  # the first batch's consumer is stuck until the gate opens
        if isinstance(message, Tracked) and not gate.is_set():
            blocked.set()
            gate.wait(5)
        split(message)

    tracker = TrackerActor.start(root_session_id=root, publish=publish)
    tracker.actor_inbox.limit(10, droppable=(EventsReceived,), lost_marker=EventsLost())
    tracker.tell(EventsReceived(events=(busy,), connection=1, size=10))
    assert blocked.wait(5)
    for _ in range(5):  # one fits, four are dropped
        tracker.tell(EventsReceived(events=(), connection=1, size=10))
    gate.set()
    assert split.syncs.get(timeout=5).reason == "lost"
    notice = drain(split.out, lambda m: isinstance(m, Notice))[-1]
    assert "4 batch(es) skipped" in notice.text


def test_tracker_actor_resyncs_once_more_when_the_stream_fails_then_ends_the_phase():
    root, snapshot = root_of("a_basic")
    tracker, out, syncs = start_tracker(root)
    failed = StreamFailed(reason="no working connection for 60s")
    tracker.tell(failed)
    tracker.tell(failed)  # once is enough
    assert syncs.get(timeout=5).reason == "final"
    assert out.get(timeout=5) == failed
    tracker.tell(
        SnapshotFetched(reason="final", snapshots=((root, tuple(snapshot)),), root_idle=False)
    )
    got = drain(out, lambda m: isinstance(m, EndPhase))
    assert [type(m) for m in got] == [Resynced, Tracked, EndPhase]
    assert got[0].recovered > 0
    assert got[-1] == EndPhase(
        verdict="failed", reason="event stream lost: no working connection for 60s"
    )
    assert syncs.empty()


class FakeClient:
    """Records calls; answers from canned data or raises (`reply_fails`: that many replies
    fail first)."""

    def __init__(self, *, messages=None, status=None, fail=None, reply_fails=0, seen=None, asks=()):
        self._messages = messages or {}
        self._asks = list(asks)
        self._status = status or {}
        self._fail = fail
        self._reply_fails = reply_fails
        self._seen = seen  # what was published by the time a reply is sent
        self.published_before_reply = []
        self.calls = []
        self.called = threading.Event()
        self.replied = threading.Event()

    def status(self):
        self.calls.append(("status",))
        if self._fail:
            raise self._fail
        return self._status

    def messages(self, session_id, limit=None):
        self.calls.append(("messages", session_id, limit))
        messages = self._messages.get(session_id, [])
        return messages[-limit:] if limit else messages

    def reply_permission(self, request_id, reply, *, session_id, message=None):
        self.calls.append(("permission", request_id, reply, session_id, message))
        if self._seen is not None:
            self.published_before_reply.append(len(self._seen))
        if self._reply_fails:
            self._reply_fails -= 1
            raise ServerUnreachableError("POST /permission: cannot reach x")
        self.replied.set()
        return True

    def reject_question(self, request_id, *, session_id=None):
        self.calls.append(("question", request_id))
        return True

    def pending_permissions(self, session_id):
        self.calls.append(("asks", session_id))
        return self._asks


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
    sync = SyncActor.start(client=client, root_session_id="ses_r", publish=replies.put)
    sync.tell(SetBaseline(message_id="msg_1"))
    sync.tell(RequestSync(session_ids=("ses_c", "ses_r"), reason="reconnect"))
    reply = replies.get(timeout=5)
    assert reply.snapshots == (("ses_c", (msg("msg_2"),)), ("ses_r", (msg("msg_3"),)))
    assert reply.root_idle is False
    assert reply.error is None
    assert ("messages", "ses_r", 50) in client.calls  # one short page was enough


def test_a_lossy_resync_finds_the_asks_a_break_lost_and_the_tracker_asks_them_again():
    ask = {"id": "per_1", "sessionID": "ses_r", "permission": "bash", "patterns": ["ls"]}
    other = {"id": "per_2", "sessionID": "ses_elsewhere", "permission": "bash", "patterns": []}
    client = FakeClient(messages={"ses_r": []}, asks=[ask, other])
    replies = queue.Queue()
    sync = SyncActor.start(client=client, root_session_id="ses_r", publish=replies.put)
    sync.tell(RequestSync(session_ids=("ses_r",), reason="idle"))
    assert replies.get(timeout=5).asks == ()  # an idle sync loses nothing: no listing
    sync.tell(RequestSync(session_ids=("ses_r",), reason="reconnect"))
    fetched = replies.get(timeout=5)
    assert fetched.asks == (ask, other)
    tracker, out, _ = start_tracker("ses_r")
    tracker.tell(fetched)
    got = drain(out, lambda m: isinstance(m, Tracked))
    assert [e for e in effects_of(got) if isinstance(e, PermissionAsked)] == [
        PermissionAsked(session_id="ses_r", request=ask)  # of the tree only
    ]


def test_an_idle_sync_does_not_ask_whether_the_root_is_idle():
    client = FakeClient(messages={"ses_r": [msg("msg_1")]}, status={"ses_r": {"type": "busy"}})
    replies = queue.Queue()
    sync = SyncActor.start(client=client, root_session_id="ses_r", publish=replies.put)
    sync.tell(RequestSync(session_ids=("ses_r",), reason="idle"))
    reply = replies.get(timeout=5)
    assert reply.root_idle is True
    assert ("status",) not in client.calls


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
    sync = SyncActor.start(client=client, root_session_id="ses_r", publish=replies.put)
    sync.tell(SetBaseline(message_id=baseline))
    sync.tell(RequestSync(session_ids=("ses_r",), reason="idle"))
    ((_, messages),) = replies.get(timeout=5).snapshots
    assert messages == tuple(m for m in history if m["info"]["id"] > baseline)
    assert [c for c in client.calls if c[0] == "messages"] == calls


class FormatClient(FakeClient):
    """opencode 1.18.33 with a prompt sent with an output format: a page that holds it is 400."""

    def __init__(self, history, prompt_id):
        super().__init__(messages={"ses_r": history})
        self._prompt_id = prompt_id

    def messages(self, session_id, limit=None):
        page = super().messages(session_id, limit)
        if any(m["info"]["id"] == self._prompt_id for m in page):
            raise UpstreamHTTPError(
                method="GET",
                path="/session/ses_r/message",
                status=400,
                body="Expected OutputFormatJsonSchema, got {...} at [0].info.format",
            )
        return page


@pytest.mark.parametrize(("baseline", "after"), [(None, 9), ("msg_010", 9), (None, 130)])
def test_a_root_whose_prompt_carried_an_output_format_still_resyncs(baseline, after):
    history = [msg(f"msg_{i:03d}") for i in range(1, 12 + after)]
    prompt = {"info": {"id": "msg_011", "role": "user"}, "parts": []}
    history[10] = prompt  # the attempt's prompt, with its format: unlistable
    client = FormatClient(history, "msg_011")
    replies = queue.Queue()
    sync = SyncActor.start(client=client, root_session_id="ses_r", publish=replies.put)
    sync.tell(SetBaseline(message_id=baseline))
    sync.tell(RequestSync(session_ids=("ses_r",), reason="idle"))
    reply = replies.get(timeout=5)
    assert reply.error is None
    ((_, messages),) = reply.snapshots
    assert [m["info"]["id"] for m in messages] == [f"msg_{i:03d}" for i in range(12, 12 + after)]


def test_sync_actor_reports_failures_instead_of_raising():
    client = FakeClient(fail=ServerUnreachableError("GET /session/status: cannot reach x"))
    replies = queue.Queue()
    sync = SyncActor.start(client=client, root_session_id="ses_r", publish=replies.put)
    sync.tell(RequestSync(session_ids=("ses_r",), reason="reconnect"))
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


def test_responder_publishes_its_decision_before_it_replies():
    published, seen = queue.Queue(), []
    client = FakeClient(seen=seen)

    def publish(message):
        seen.append(message)
        published.put(message)

    responder = ResponderActor.start(client=client, policy=PermissionPolicy(), publish=publish)
    ask = PermissionAsked(session_id="ses_r", request={"id": "per_1", "permission": "bash"})
    responder.tell(Tracked(root_session_id="ses_r", effects=(ask,)))
    answer = published.get(timeout=5)
    assert (answer.request_id, answer.reply, answer.error) == ("per_1", "reject", None)
    assert client.replied.wait(5)
    assert client.published_before_reply == [1]


@pytest.mark.parametrize(("fails", "error"), [(2, None), (9, "POST /permission: cannot reach x")])
def test_responder_retries_a_reply_on_transient_errors(fails, error):
    published = queue.Queue()
    client = FakeClient(reply_fails=fails)
    responder = ResponderActor.start(
        client=client,
        policy=PermissionPolicy(),
        publish=published.put,
        retry_wait=tenacity.wait_none(),
    )
    ask = PermissionAsked(session_id="ses_r", request={"id": "per_1", "permission": "edit"})
    responder.tell(Tracked(root_session_id="ses_r", effects=(ask,)))
    assert published.get(timeout=5).error is None
    if error is None:
        assert client.replied.wait(5)
    else:
        assert published.get(timeout=5).error == error
    attempts = [call for call in client.calls if call[0] == "permission"]
    assert len(attempts) == min(fails + 1, REPLY_ATTEMPTS)
    assert published.empty()


def banner(session_id="ses_1"):
    return PhaseStarted(
        phase="p",
        label="P",
        session_id=session_id,
        directory="/w",
        agent=None,
        model=None,
        server_version="1.18.33",
        server_url="http://127.0.0.1:1",
    )


def test_transcript_writes_header_raw_events_and_records(tmp_path):
    path = tmp_path / "t" / "run.jsonl"
    transcript = TranscriptActor.start(path=str(path), header={"phase": "p"})
    event = {"type": "session.idle", "properties": {"sessionID": "ses_1"}}
    transcript.tell(banner())
    transcript.tell(Tracked(root_session_id="ses_1", effects=(), raw=(event,)))
    transcript.tell(VerdictReached(verdict="done", reason="ok", exit_code=0))
    transcript.stop()
    lines = [json.loads(line) for line in path.open()]
    assert lines[0]["type"] == "runner.header"
    assert (lines[0]["phase"], lines[0]["session_id"]) == ("p", "ses_1")
    assert lines[0]["opencode_version"] == "1.18.33"
    assert lines[1]["type"] == "runner.phase_started"
    assert lines[2] == event
    assert lines[3]["type"] == "runner.verdict_reached"
    assert (lines[3]["verdict"], lines[3]["exit_code"]) == ("done", 0)


def test_transcript_of_a_phase_that_never_started_still_has_its_header(tmp_path):
    path = tmp_path / "run.jsonl"
    transcript = TranscriptActor.start(path=str(path), header={"phase": "p"})
    transcript.tell(VerdictReached(verdict="failed", reason="no server", exit_code=1))
    transcript.stop()
    lines = [json.loads(line) for line in path.open()]
    assert [line["type"] for line in lines] == ["runner.header", "runner.verdict_reached"]
    assert lines[0]["session_id"] is None


def test_the_transcript_actor_alone_closes_its_file(tmp_path):
    path = tmp_path / "run.jsonl"
    transcript = TranscriptActor.start(path=str(path), header={"phase": "p"})
    transcript.tell(banner())
    transcript.stop()
    transcript_lines = path.read_text().splitlines()
    assert len(transcript_lines) == 2
    with pytest.raises(pykka.ActorDeadError):
        transcript.tell(Notice(level="info", text="too late"))


def test_record_type_is_snake_case():
    assert record_type(StreamConnected(connection=1)) == "runner.stream_connected"
