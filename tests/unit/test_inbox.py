"""The bounded inbox: weighed messages drop or wait at the bound; control always passes."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import pykka
import pytest

from actors._inbox import Inbox
from actors._supervised import SupervisedActor

pytestmark = pytest.mark.timeout(10)


@dataclass(frozen=True)
class Batch:
    size: int


@dataclass(frozen=True)
class Control:
    pass


class Lost:
    pass


class Letter:
    def __init__(self, message):
        self.message = message
        self.reply_to = None


def drain(inbox):
    out = []
    while not inbox.empty():
        out.append(inbox.get().message)
    return out


def test_unlimited_inbox_takes_everything():
    inbox = Inbox()
    for _ in range(100):
        inbox.put(Letter(Batch(1 << 20)))
    assert len(drain(inbox)) == 100


def test_droppable_batches_drop_past_the_bound_and_the_marker_comes_once():
    inbox = Inbox()
    lost = Lost()
    inbox.limit(100, droppable=(Batch,), lost_marker=lost)
    for _ in range(5):
        inbox.put(Letter(Batch(40)))
    assert drain(inbox) == [Batch(40), Batch(40), lost]
    assert inbox.take_dropped() == 3
    assert inbox.take_dropped() == 0


def test_the_marker_is_rearmed_once_the_consumer_looked():
    inbox = Inbox()
    lost = Lost()
    inbox.limit(10, droppable=(Batch,), lost_marker=lost)
    inbox.put(Letter(Batch(10)))
    inbox.put(Letter(Batch(10)))
    assert drain(inbox) == [Batch(10), lost]
    assert inbox.take_dropped() == 1
    inbox.put(Letter(Batch(10)))
    inbox.put(Letter(Batch(10)))
    assert drain(inbox) == [Batch(10), lost]


def test_one_oversized_batch_passes_an_empty_inbox():
    inbox = Inbox()
    inbox.limit(10, droppable=(Batch,))
    inbox.put(Letter(Batch(1000)))
    assert drain(inbox) == [Batch(1000)]


def test_control_messages_pass_a_full_inbox():
    inbox = Inbox()
    inbox.limit(10)
    inbox.put(Letter(Batch(10)))
    inbox.put(Letter(Control()))
    assert drain(inbox) == [Batch(10), Control()]


def test_a_blocking_edge_waits_for_room():
    inbox = Inbox()
    inbox.limit(10)
    inbox.put(Letter(Batch(10)))
    put = threading.Event()

    def producer():
        inbox.put(Letter(Batch(5)))
        put.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not put.wait(0.2)  # bounded wait: the producer is still blocked
    assert inbox.get().message == Batch(10)
    assert put.wait(5)
    assert drain(inbox) == [Batch(5)]


def test_closing_releases_a_blocked_producer():
    inbox = Inbox()
    inbox.limit(10)
    inbox.put(Letter(Batch(10)))
    put = threading.Event()
    threading.Thread(target=lambda: (inbox.put(Letter(Batch(5))), put.set()), daemon=True).start()
    assert not put.wait(0.2)
    inbox.close()
    assert put.wait(5)


class Stuck(SupervisedActor):
    def __init__(self, gate, **kwargs):
        super().__init__(**kwargs)
        self.gate = gate

    def on_receive(self, message):
        self.gate.wait(5)
        raise RuntimeError("gave up")


def test_a_dead_consumer_releases_its_blocked_producers():
    gate = threading.Event()
    ref = Stuck.start(gate)
    ref.actor_inbox.limit(10)
    ref.tell(Batch(10))  # taken off the inbox: the actor is stuck handling it
    ref.tell(Batch(10))
    put = threading.Event()

    def producer():
        with contextlib.suppress(pykka.ActorDeadError):
            ref.tell(Batch(10))
        put.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not put.wait(0.2)
    gate.set()  # the handler raises: the actor dies
    assert put.wait(5)


def test_take_more_takes_only_the_leading_run_of_one_type():
    inbox = Inbox()
    inbox.limit(1000)
    for message in (Batch(1), Batch(2), Control(), Batch(3)):
        inbox.put(Letter(message))
    assert inbox.get().message == Batch(1)
    assert inbox.take_more(Batch, limit=10) == [Batch(2)]
    assert inbox.used == 3
    assert drain(inbox) == [Control(), Batch(3)]


def test_take_more_stops_at_its_limit():
    inbox = Inbox()
    for size in range(5):
        inbox.put(Letter(Batch(size)))
    assert inbox.take_more(Batch, limit=2) == [Batch(0), Batch(1)]
    assert len(drain(inbox)) == 3


def test_joined_batches_keep_their_order_and_weight():
    from messages.pipeline import Tracked

    first = Tracked(root_session_id="r", effects=(1,), raw=({"a": 1},), size=10)
    more = [Tracked(root_session_id="r", effects=(2, 3), raw=({"b": 2},), size=5)]
    joined = Tracked.joined(first, more)
    assert (joined.effects, joined.raw, joined.size) == ((1, 2, 3), ({"a": 1}, {"b": 2}), 15)
    assert Tracked.joined(first, []) is first
