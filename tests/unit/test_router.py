"""The routing table and its router: tells only, the table decides, and `seal` puts the verdict
last whatever the producers are doing."""

from __future__ import annotations

import queue
import threading

import pykka
import pytest

from actors._supervised import SupervisedActor
from messages.control import Begin, Concluded
from messages.pipeline import Tracked
from messages.records import Notice, VerdictReached
from runner.supervisor.routes import INBOXES, RENDERER, ROUTES, SUPERVISOR, TERMINATION, Router

pytestmark = pytest.mark.timeout(10)

VERDICT = VerdictReached(verdict="done", reason="ok", exit_code=0)


def batch(size=10):
    return Tracked(root_session_id="r", effects=(), size=size)


class Sink(SupervisedActor):
    """Records what it receives; may be held up on a gate before handling anything."""

    def __init__(self, seen, gate=None, **kwargs):
        super().__init__(**kwargs)
        self.seen, self.gate = seen, gate

    def on_receive(self, message):
        if self.gate is not None:
            self.gate.wait(5)
        self.seen.put(message)


def test_every_routed_type_has_consumers_and_every_bound_names_a_consumer():
    assert all(ROUTES.values())
    named = {name for names in ROUTES.values() for name in names}
    assert set(INBOXES) <= named


def test_messages_go_only_where_the_table_says():
    router, terminal, policy = Router(), queue.Queue(), queue.Queue()
    router.connect(RENDERER, terminal.put)
    router.connect(TERMINATION, policy.put)
    router.publish(Begin())
    router.publish(Notice(level="info", text="hi"))
    assert policy.get_nowait() == Begin()
    assert terminal.get_nowait() == Notice(level="info", text="hi")
    assert terminal.empty()
    assert policy.empty()


def test_a_type_without_a_route_goes_nowhere():
    router, sink = Router(), queue.Queue()
    router.connect(SUPERVISOR, sink.put)
    router.publish("not a message")
    router.publish(Concluded(verdict="done", reason="ok", exit_code=0))
    assert sink.get_nowait().verdict == "done"
    assert sink.empty()


def test_the_sealed_verdict_is_last_and_later_publishes_are_dropped():
    router, seen = Router(), queue.Queue()
    router.connect_actor(RENDERER, Sink.start(seen))
    router.publish(batch())
    router.seal(VERDICT, timeout=5)
    router.publish(Notice(level="info", text="too late"))
    assert [seen.get(timeout=5), seen.get(timeout=5)] == [batch(), VERDICT]
    with pytest.raises(queue.Empty):
        seen.get(timeout=0.2)


def test_sealing_releases_a_producer_blocked_on_a_full_inbox_and_waits_for_it():
    router, seen, gate = Router(), queue.Queue(), threading.Event()
    sink = Sink.start(seen, gate)
    router.connect_actor(RENDERER, sink)
    sink.actor_inbox.limit(10)
    router.publish(batch())  # taken: the sink is held up handling it
    router.publish(batch())  # waits in the inbox, which is now full
    published = threading.Event()

    def producer():
        router.publish(batch(size=5))  # blocks: the consumer must not lose data
        published.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not published.wait(0.2)
    router.seal(VERDICT, timeout=5)  # closes the inboxes: the producer's batch lands first
    assert published.wait(5)
    gate.set()
    got = [seen.get(timeout=5) for _ in range(4)]
    assert got == [batch(), batch(), batch(size=5), VERDICT]


def test_a_stopped_consumer_is_skipped_quietly():
    router, seen = Router(), queue.Queue()
    sink = Sink.start(seen)
    router.connect_actor(RENDERER, sink)
    sink.stop()
    router.publish(batch())  # no ActorDeadError reaches the producer
    assert not sink.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        sink.tell(batch())
