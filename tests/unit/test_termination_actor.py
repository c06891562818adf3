"""TerminationActor with a fake client: prompts, the timed-out POST rule, checks, verdicts."""

from __future__ import annotations

import queue
import threading

import pytest

from actors.checks import ArtifactBaseline, DoneCriteria
from actors.termination import Begin, EndPhase, PromptOptions, TerminationActor
from core.errors import RequestTimeoutError
from core.termination import Limits, Policy
from core.tracker import MessageUpdated, SessionIdle
from messages.pipeline import SetBaseline, Tracked
from messages.records import AttemptStarted, PromptSent, VerdictReached

pytestmark = pytest.mark.timeout(20)

ROOT = "ses_root"


class FakeClient:
    """Records prompts; `history` is what GET /message returns; POSTs may time out."""

    def __init__(self, *, timeouts=0, arrives=False):
        self.history = [{"info": {"id": "msg_000", "role": "user"}, "parts": []}]
        self.prompts = []
        self.aborts = []
        self._timeouts = timeouts
        self._arrives = arrives
        self.prompted = threading.Event()
        self.aborted = threading.Event()

    def messages(self, session_id, limit=None):
        return self.history[-limit:] if limit else list(self.history)

    def prompt_async(self, session_id, text, **options):
        self.prompts.append((session_id, text, options))
        self.prompted.set()
        if self._timeouts:
            self._timeouts -= 1
            if self._arrives:
                part = {"type": "text", "text": text}
                self.history.append({"info": {"id": "msg_001", "role": "user"}, "parts": [part]})
            raise RequestTimeoutError("POST prompt_async: no answer")

    def abort(self, session_id):
        self.aborts.append(session_id)
        self.aborted.set()
        return True


def start(client, tmp_path, **limits):
    published, synced = queue.Queue(), queue.Queue()
    policy = Policy(Limits(**limits), prompt="Do it", session_id=ROOT, now=0.0)
    ref = TerminationActor.start(
        policy=policy,
        client=client,
        options=PromptOptions(model="test/mock-model"),
        criteria=DoneCriteria(),
        baseline=ArtifactBaseline(),
        directory=tmp_path,
        sync=synced.put,
        publish=published.put,
        clock=lambda: 0.0,
        tick=None,
    )
    return ref, published, synced


def next_of(q, kind, timeout=5):
    while True:
        message = q.get(timeout=timeout)
        if isinstance(message, kind):
            return message


def finish_turn(ref, finish="stop"):
    info = {"id": "msg_002", "role": "assistant", "finish": finish}
    ref.tell(Tracked(root_session_id=ROOT, effects=(MessageUpdated(session_id=ROOT, info=info),)))
    ref.tell(Tracked(root_session_id=ROOT, effects=(SessionIdle(session_id=ROOT),)))


def test_begin_sends_the_prompt_once_after_setting_the_baseline(tmp_path):
    client = FakeClient()
    ref, published, synced = start(client, tmp_path)
    ref.tell(Begin())
    assert next_of(published, AttemptStarted).kind == "initial"
    assert synced.get(timeout=5) == SetBaseline(message_id="msg_000")
    assert next_of(published, PromptSent) == PromptSent(number=1, baseline="msg_000")
    assert client.prompts == [
        (ROOT, "Do it", {"model": "test/mock-model", "agent": None, "variant": None})
    ]
    finish_turn(ref)
    verdict = next_of(published, VerdictReached)
    assert (verdict.verdict, verdict.exit_code) == ("done", 0)
    assert [a["kind"] for a in verdict.summary["attempts"]] == ["initial"]


def test_a_timed_out_post_that_reached_the_server_is_not_sent_again(tmp_path):
    client = FakeClient(timeouts=1, arrives=True)
    ref, published, _ = start(client, tmp_path)
    ref.tell(Begin())
    next_of(published, PromptSent)
    assert len(client.prompts) == 1


def test_a_timed_out_post_that_did_not_reach_the_server_is_sent_once_more(tmp_path):
    client = FakeClient(timeouts=1, arrives=False)
    ref, published, _ = start(client, tmp_path)
    ref.tell(Begin())
    next_of(published, PromptSent)
    assert len(client.prompts) == 2


def test_a_prompt_that_keeps_timing_out_fails_the_phase(tmp_path):
    client = FakeClient(timeouts=2, arrives=False)
    ref, published, _ = start(client, tmp_path)
    ref.tell(Begin())
    verdict = next_of(published, VerdictReached)
    assert verdict.verdict == "failed"
    assert verdict.reason == "could not send the prompt: POST prompt_async: no answer"


def test_an_interrupt_while_running_aborts_then_concludes_on_idle(tmp_path):
    client = FakeClient()
    ref, published, _ = start(client, tmp_path)
    ref.tell(Begin())
    next_of(published, PromptSent)
    ref.tell(EndPhase(verdict="interrupted", reason="interrupted by SIGINT"))
    ref.tell(Tracked(root_session_id=ROOT, effects=(SessionIdle(session_id=ROOT),)))
    verdict = next_of(published, VerdictReached)
    assert (verdict.verdict, verdict.exit_code) == ("interrupted", 130)
    assert client.aborted.wait(5)
    assert client.aborts == [ROOT]
