"""Actors push their crash or stop to whoever supervises them; nobody polls."""

from __future__ import annotations

import queue

import pytest

from actors._supervised import SupervisedActor
from messages.control import ActorCrashed, ActorStopped

pytestmark = pytest.mark.timeout(10)


class Brittle(SupervisedActor):
    def on_receive(self, message):
        raise ValueError(f"cannot handle {message!r}")


def test_a_crash_is_reported_with_its_reason():
    reports = queue.Queue()
    ref = Brittle.start(report=reports.put)
    ref.tell("boom")
    report = reports.get(timeout=5)
    assert report == ActorCrashed(actor="Brittle", reason="ValueError: cannot handle 'boom'")
    assert ref.actor_stopped.wait(5)


def test_a_stop_is_reported_as_a_stop():
    reports = queue.Queue()
    ref = Brittle.start(report=reports.put)
    ref.stop(timeout=5)
    assert reports.get(timeout=5) == ActorStopped(actor="Brittle")
    assert reports.empty()


def test_an_unsupervised_actor_reports_to_nobody():
    ref = Brittle.start()
    ref.tell("boom")
    assert ref.actor_stopped.wait(5)
