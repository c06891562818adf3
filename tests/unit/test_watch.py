"""The supervisor's watch, fed scripted message histories: what it publishes and how it ends."""

from __future__ import annotations

import pytest

from messages.control import ActorCrashed, ActorStopped, Begin, Concluded, EndPhase
from messages.records import Notice, PermissionAnswered, Resynced
from messages.server import ServerExited, ServerFailed
from messages.stream import StreamConnected
from runner.supervisor.watch import Watch

pytestmark = pytest.mark.timeout(10)

DONE = Concluded(verdict="done", reason="ok", exit_code=0, summary={"attempts": []})


def play(history):
    """Feed the history; return (everything published, the end, the watch)."""
    watch, published = Watch(), []
    for message in history:
        step = watch.cancel(message[1]) if isinstance(message, tuple) else watch.on(message)
        published.extend(step.publish)
        if step.end is not None:
            return published, step.end, watch
    return published, None, watch


def test_the_first_connection_begins_and_later_reconnects_are_counted():
    published, end, watch = play(
        [
            StreamConnected(connection=1),
            StreamConnected(connection=2),
            Resynced(reason="reconnect", recovered=3),
            StreamConnected(connection=3),
            Resynced(reason="idle", recovered=0),
            DONE,
        ]
    )
    assert published == [Begin()]
    assert end is DONE
    assert (watch.reconnects, watch.resyncs) == (2, 2)


def test_joining_a_stream_already_up_on_connection_four_begins_without_a_reconnect():
    published, end, watch = play([StreamConnected(connection=4), DONE])
    assert end is DONE
    assert published == [Begin()]
    assert watch.reconnects == 0


@pytest.mark.parametrize("kind", [ServerExited, ServerFailed])
def test_a_dead_server_is_shown_with_its_log_and_ends_through_the_policy(kind):
    died = (
        kind(exit_code=-9, reason="opencode server died (signal SIGKILL)", log_tail=("a", "b"))
        if kind is ServerExited
        else kind(reason="server actor crashed: boom", log_tail=("a", "b"))
    )
    published, end, watch = play([StreamConnected(connection=1), died])
    assert end is None  # the policy concludes (it aborts nothing: the server is gone)
    assert published[0] == Begin()
    notice, ending = published[1:]
    assert isinstance(notice, Notice)
    assert notice.level == "error"
    assert notice.text.endswith("last server log lines:\na\nb")
    assert ending == EndPhase(verdict="failed", reason=died.reason)
    assert watch.log_tail == ("a", "b")


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        (ActorCrashed(actor="TrackerActor", reason="KeyError: 'x'"), "the TrackerActor crashed"),
        (ActorStopped(actor="RendererActor"), "the RendererActor stopped unexpectedly"),
    ],
)
def test_a_crashed_or_stopped_actor_ends_the_phase_failed_at_once(report, reason):
    _, end, _ = play([StreamConnected(connection=1), report, DONE])
    assert (end.verdict, end.exit_code) == ("failed", 1)
    assert end.reason.startswith(reason)


def test_a_cancel_is_published_once_and_the_policy_concludes():
    interrupted = Concluded(verdict="interrupted", reason="bye", exit_code=130)
    published, end, _ = play(
        [StreamConnected(connection=1), ("cancel", "bye"), ("cancel", "again"), interrupted]
    )
    assert published == [Begin(), EndPhase(verdict="interrupted", reason="bye")]
    assert end is interrupted


def test_records_that_are_not_its_business_change_nothing():
    answer = PermissionAnswered(
        session_id="s", request_id="p", permission="bash", patterns=(), reply="reject", message=None
    )
    published, end, watch = play([answer, Resynced(reason="idle", recovered=0)])
    assert (published, end) == ([], None)
    assert watch.resyncs == 1


def test_no_verdict_in_time_is_failed():
    end = Watch().expired().end
    assert (end.verdict, end.reason) == ("failed", "the supervisor gave up waiting for a verdict")


def test_no_verdict_soon_after_a_cancel_is_interrupted_with_the_first_reason():
    watch = Watch()
    watch.cancel("interrupted by SIGHUP")
    watch.cancel("interrupted by SIGINT")
    end = watch.expired().end
    assert (end.verdict, end.reason, end.exit_code) == ("interrupted", "interrupted by SIGHUP", 130)
