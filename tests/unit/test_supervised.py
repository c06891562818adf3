"""A crashed actor leaves its reason for the supervisor."""

from __future__ import annotations

import pytest

from actors._supervised import SupervisedActor, crash_reason

pytestmark = pytest.mark.timeout(10)


class Brittle(SupervisedActor):
    def on_receive(self, message):
        raise ValueError(f"cannot handle {message!r}")


def test_crash_reason_is_recorded_once():
    ref = Brittle.start()
    ref.tell("boom")
    ref.actor_stopped.wait(5)
    assert not ref.is_alive()
    assert crash_reason(ref) == "ValueError: cannot handle 'boom'"
    assert crash_reason(ref) is None


def test_a_healthy_actor_has_no_crash_reason():
    ref = Brittle.start()
    ref.stop()
    assert crash_reason(ref) is None
