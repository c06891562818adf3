"""TerminationActor with a fake client and a fake clock: prompts, the timed-out POST rule,
checks, timeouts and graces, permission answers, conclusions. Time moves only when a test
moves the clock and tells the actor a `Tick`."""

from __future__ import annotations

import queue
import threading

import pytest

from actors.checks import ArtifactBaseline, DoneCriteria
from actors.termination import PromptOptions, TerminationActor
from core.errors import RequestTimeoutError, UpstreamHTTPError
from core.termination import ABORT_GRACE, INTERRUPT_GRACE, Limits, Policy
from core.tracker import MessageUpdated, SessionIdle, StatusChanged
from messages.control import Begin, Concluded, EndPhase, Tick
from messages.pipeline import SetBaseline, Tracked
from messages.records import AttemptStarted, Notice, PermissionAnswered, PromptSent

pytestmark = pytest.mark.timeout(20)

ROOT = "ses_root"


class FakeClient:
    """Records prompts; `history` is what GET /message returns; POSTs may time out."""

    def __init__(self, *, timeouts=0, arrives=False):
        self.history = [{"info": {"id": "msg_000", "role": "user"}, "parts": []}]
        self.prompts = []
        self.reads = 0
        self.aborts = []
        self._timeouts = timeouts
        self._arrives = arrives
        self.prompted = threading.Event()
        self.aborted = threading.Event()
        self.statuses = {}  # what GET /session/status returns
        self.sent = queue.Queue()  # every prompt POSTed, in order
        self.running = True  # what an abort answers: was a turn running (2.x can say no)

    def messages(self, session_id, limit=None):
        self.reads += 1
        return self.history[-limit:] if limit else list(self.history)

    def prompt_async(self, session_id, text, **options):
        self.prompts.append((session_id, text, options))
        self.sent.put(options)
        self.prompted.set()
        if self._timeouts:
            self._timeouts -= 1
            if self._arrives:
                part = {"type": "text", "text": text}
                self.history.append({"info": {"id": "msg_001", "role": "user"}, "parts": [part]})
            raise RequestTimeoutError("POST prompt_async: no answer")

    def status(self):
        return dict(self.statuses)

    def abort(self, session_id):
        self.aborts.append(session_id)
        self.aborted.set()
        return self.running


class FakeClock:
    """Monotonic time that moves only when the test says so."""

    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def start(client, tmp_path, clock=None, **limits):
    published, synced = queue.Queue(), queue.Queue()
    clock = clock or FakeClock()
    policy = Policy(Limits(**limits), prompt="Do it", session_id=ROOT, now=clock())
    ref = TerminationActor.start(
        policy=policy,
        client=client,
        options=PromptOptions(model="test/mock-model"),
        criteria=DoneCriteria(),
        baseline=ArtifactBaseline(),
        directory=tmp_path,
        publish=lambda m: (synced if isinstance(m, SetBaseline) else published).put(m),
        clock=clock,
        tick=None,
    )
    return ref, published, synced


def next_of(q, kind, timeout=5):
    while True:
        message = q.get(timeout=timeout)
        if isinstance(message, kind):
            return message


def nothing_more(ref, published):
    """Everything told so far was handled (an ask queues behind it) and published nothing."""
    ref.proxy().summary().get(timeout=5)
    assert published.empty(), published.get_nowait()


def tick_at(ref, clock, now):
    clock.now = now
    ref.tell(Tick())


def running(tmp_path, client=None, started=True, **limits):
    """An actor whose first prompt went out at t=0 (the policy is RUNNING); `started`: the
    session turned busy, as it does at once for a prompt that arrived."""
    clock = FakeClock()
    client = client or FakeClient()
    ref, published, _ = start(client, tmp_path, clock, **limits)
    ref.tell(Begin())
    next_of(published, PromptSent)  # the baseline outcome was handled before this
    if started:
        busy = StatusChanged(session_id=ROOT, status={"type": "busy"})
        ref.tell(Tracked(root_session_id=ROOT, effects=(busy,)))
    return ref, published, clock, client


def idle(ref):
    ref.tell(Tracked(root_session_id=ROOT, effects=(SessionIdle(session_id=ROOT),)))


def finish_turn(ref, finish="stop"):
    info = {"id": "msg_002", "role": "assistant", "finish": finish}
    ref.tell(Tracked(root_session_id=ROOT, effects=(MessageUpdated(session_id=ROOT, info=info),)))
    idle(ref)


def test_begin_sends_the_prompt_once_after_setting_the_baseline(tmp_path):
    client = FakeClient()
    ref, published, synced = start(client, tmp_path)
    ref.tell(Begin())
    assert next_of(published, AttemptStarted).kind == "initial"
    # the phase's own new session holds nothing before its first prompt: no request for it
    assert synced.get(timeout=5) == SetBaseline(message_id=None)
    assert next_of(published, PromptSent) == PromptSent(number=1, baseline=None)
    assert client.reads == 0
    ((session, text, options),) = client.prompts
    assert (session, text) == (ROOT, "Do it")
    assert options.pop("messageID").startswith("msg_")
    assert options.pop("partID").startswith("prt_")  # its own ids: a resend is stored once
    assert options == {"model": "test/mock-model", "agent": None, "variant": None, "format": None}
    finish_turn(ref)
    verdict = next_of(published, Concluded)
    assert (verdict.verdict, verdict.exit_code) == ("done", 0)
    assert [a["kind"] for a in verdict.summary["attempts"]] == ["initial"]


@pytest.mark.parametrize("arrives", [True, False])
def test_a_timed_out_post_is_sent_once_more_with_the_same_ids(tmp_path, arrives):
    client = FakeClient(timeouts=1, arrives=arrives)
    ref, published, _ = start(client, tmp_path)
    ref.tell(Begin())
    next_of(published, PromptSent)
    first, second = client.prompts
    assert first == second  # same message and part id: opencode stores it once


def test_a_prompt_whose_turn_never_started_is_sent_again_once(tmp_path):
    ref, published, clock, client = running(tmp_path, started=False)
    tick_at(ref, clock, 4.9)
    nothing_more(ref, published)
    tick_at(ref, clock, 5.0)  # no busy status, no assistant message: look, then send again
    notice = next_of(published, Notice)
    assert notice.text == "the prompt was accepted but no turn started; sending it again"
    first, again = client.sent.get(timeout=5), client.sent.get(timeout=5)
    assert first == again
    tick_at(ref, clock, 10.0)  # looked once more; sent no third time
    tick_at(ref, clock, 30.0)
    nothing_more(ref, published)
    assert len(client.prompts) == 2


def test_a_prompt_whose_session_turned_busy_is_not_checked(tmp_path):
    ref, published, clock, client = running(tmp_path)  # busy: the turn started
    reads = client.reads
    tick_at(ref, clock, 30.0)
    nothing_more(ref, published)
    assert (len(client.prompts), client.reads) == (1, reads)


def test_a_prompt_the_server_shows_busy_when_checked_is_not_sent_again(tmp_path):
    ref, published, clock, client = running(tmp_path, started=False)
    client.statuses = {ROOT: {"type": "busy"}}  # the stream missed it; the server knows
    tick_at(ref, clock, 5.0)
    tick_at(ref, clock, 30.0)
    nothing_more(ref, published)
    assert len(client.prompts) == 1


def test_a_prompt_that_keeps_timing_out_fails_the_phase(tmp_path):
    client = FakeClient(timeouts=2, arrives=False)
    ref, published, _ = start(client, tmp_path)
    ref.tell(Begin())
    verdict = next_of(published, Concluded)
    assert verdict.verdict == "failed"
    assert verdict.reason == "could not send the prompt: POST prompt_async: no answer"


def test_an_interrupt_while_running_aborts_then_concludes_on_idle(tmp_path):
    client = FakeClient()
    ref, published, _ = start(client, tmp_path)
    ref.tell(Begin())
    next_of(published, PromptSent)
    ref.tell(EndPhase(verdict="interrupted", reason="interrupted by SIGINT"))
    ref.tell(Tracked(root_session_id=ROOT, effects=(SessionIdle(session_id=ROOT),)))
    verdict = next_of(published, Concluded)
    assert (verdict.verdict, verdict.exit_code) == ("interrupted", 130)
    assert client.aborted.wait(5)
    assert client.aborts == [ROOT]


def test_a_stall_aborts_then_concludes_after_the_abort_grace(tmp_path):
    ref, published, clock, client = running(tmp_path, stall_timeout=10)
    busy = StatusChanged(session_id=ROOT, status={"type": "busy"})
    clock.now = 4.0
    ref.tell(Tracked(root_session_id=ROOT, effects=(busy,)))  # progress at t=4
    nothing_more(ref, published)  # handled before the clock moves on
    tick_at(ref, clock, 13.9)
    nothing_more(ref, published)
    tick_at(ref, clock, 14.0)
    notice = next_of(published, Notice)
    assert notice.text == "aborting the session: no progress for 10s"
    assert client.aborted.wait(5)
    assert client.aborts == [ROOT]
    tick_at(ref, clock, 14.0 + ABORT_GRACE - 0.1)
    nothing_more(ref, published)
    tick_at(ref, clock, 14.0 + ABORT_GRACE)
    concluded = next_of(published, Concluded)
    assert (concluded.verdict, concluded.reason, concluded.exit_code) == (
        "stalled",
        "no progress for 10s",
        2,
    )
    assert [a["kind"] for a in concluded.summary["attempts"]] == ["initial"]


def test_a_stall_of_a_session_running_nothing_concludes_when_the_abort_says_so(tmp_path):
    ref, published, clock, client = running(tmp_path, stall_timeout=10)
    client.running = False  # opencode 2.x: `{"interrupted": false}`, and no event after it
    nothing_more(ref, published)  # the busy status was handled at t=0
    tick_at(ref, clock, 10.0)
    concluded = next_of(published, Concluded)  # no tick of the abort grace needed
    assert (concluded.verdict, concluded.exit_code) == ("stalled", 2)
    assert client.aborts == [ROOT]


def test_the_phase_timeout_aborts_and_an_idle_concludes_at_once(tmp_path):
    ref, published, clock, client = running(tmp_path, phase_timeout=60, stall_timeout=1000)
    tick_at(ref, clock, 59.9)
    nothing_more(ref, published)
    tick_at(ref, clock, 60.0)
    assert next_of(published, Notice).text == "aborting the session: phase timeout of 1m reached"
    assert client.aborted.wait(5)
    clock.now = 61.0  # well inside the grace
    idle(ref)
    concluded = next_of(published, Concluded)
    assert (concluded.verdict, concluded.exit_code) == ("timed_out", 2)


def test_an_interrupt_concludes_after_half_a_second_without_an_idle(tmp_path):
    ref, published, clock, client = running(tmp_path)
    clock.now = 30.0
    ref.tell(EndPhase(verdict="interrupted", reason="interrupted by SIGINT"))
    assert next_of(published, Notice).text == "aborting the session: interrupted by SIGINT"
    assert client.aborted.wait(5)
    tick_at(ref, clock, 30.0 + INTERRUPT_GRACE - 0.1)
    nothing_more(ref, published)
    tick_at(ref, clock, 30.0 + INTERRUPT_GRACE)
    concluded = next_of(published, Concluded)
    assert (concluded.verdict, concluded.exit_code) == ("interrupted", 130)


def test_the_ticker_ends_an_interrupt_without_help(tmp_path):
    clock, client = FakeClock(), FakeClient()
    published = queue.Queue()
    ref = TerminationActor.start(
        policy=Policy(Limits(), prompt="Do it", session_id=ROOT, now=0.0),
        client=client,
        options=PromptOptions(),
        criteria=DoneCriteria(),
        baseline=ArtifactBaseline(),
        directory=tmp_path,
        publish=lambda m: None if isinstance(m, SetBaseline) else published.put(m),
        clock=clock,
        tick=0.01,  # real ticks; the fake clock still decides when the grace is over
    )
    ref.tell(Begin())
    next_of(published, PromptSent)
    ref.tell(EndPhase(verdict="interrupted", reason="interrupted by SIGINT"))
    assert client.aborted.wait(5)
    clock.advance(INTERRUPT_GRACE)
    assert next_of(published, Concluded).verdict == "interrupted"


def answered(request_id, reply="reject", error=None):
    return PermissionAnswered(
        session_id="ses_child",
        request_id=request_id,
        permission="bash",
        patterns=("rm -rf x",),
        reply=reply,
        message="Rejected by the runner's phase policy",
        error=error,
    )


def test_a_rejection_reported_twice_counts_once_and_forbids_a_graceful_finish(tmp_path):
    ref, published, _, _ = running(tmp_path)
    ref.tell(answered("per_1"))
    ref.tell(answered("per_1", error="HTTP 500"))  # the reply failed: the same request again
    finish_turn(ref, finish="tool-calls")  # cut off, checks pass: graceful, were it not for per_1
    assert next_of(published, AttemptStarted).kind == "resume"
    ref.tell(EndPhase(verdict="failed", reason="opencode server died"))
    concluded = next_of(published, Concluded)
    assert concluded.summary["rejected_permissions"] == [
        {
            "reply": "reject",
            "permission": "bash",
            "patterns": ["rm -rf x"],
            "session_id": "ses_child",
            "request_id": "per_1",
        }
    ]


def test_an_allowed_permission_leaves_a_graceful_finish(tmp_path):
    ref, published, _, _ = running(tmp_path)
    ref.tell(answered("per_1", reply="once"))
    finish_turn(ref, finish="tool-calls")
    concluded = next_of(published, Concluded)
    assert (concluded.verdict, concluded.summary["rejected_permissions"]) == (
        "done_gracefully",
        [],
    )


class FormatClient(FakeClient):
    """A session whose prompt carried an output format: opencode cannot list a page holding it."""

    def messages(self, session_id, limit=None):
        raise UpstreamHTTPError(
            method="GET",
            path=f"/session/{session_id}/message",
            status=400,
            body="Expected OutputFormatJsonSchema, got {...} at [0].info.format",
        )


def test_a_structured_prompt_whose_turn_never_started_is_sent_again(tmp_path):
    ref, published, clock, client = running(tmp_path, client=FormatClient(), started=False)
    tick_at(ref, clock, 5.0)  # the newest message is that prompt: the check says not started
    assert next_of(published, Notice).text.endswith("sending it again")
    first, again = client.sent.get(timeout=5), client.sent.get(timeout=5)
    assert first == again
