"""The buffer behind `events()`: nothing kept before it is read, bounded in bytes, and the
final verdict always fits and ends the iteration."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from messages.records import Notice, VerdictReached
from runner._events import RECORD_WEIGHT, EventBuffer

pytestmark = pytest.mark.timeout(10)

VERDICT = VerdictReached(verdict="done", reason="ok", exit_code=0)


@dataclass(frozen=True)
class Batch:
    size: int


def notice(n):
    return Notice(level="info", text=str(n))


def test_nothing_is_kept_before_events_is_called_except_the_verdict():
    buffer = EventBuffer()
    buffer.put(notice(1))
    buffer.put(VERDICT)
    assert list(buffer.read(timeout=1)) == [VERDICT]


def test_messages_after_open_come_in_order_and_end_with_the_verdict():
    buffer = EventBuffer()
    buffer.open()
    for n in range(3):
        buffer.put(notice(n))
    buffer.put(VERDICT)
    buffer.put(notice(99))  # nothing after the verdict
    assert list(buffer.read(timeout=1)) == [notice(0), notice(1), notice(2), VERDICT]


def test_past_the_byte_bound_new_messages_drop_and_are_counted():
    buffer = EventBuffer(max_bytes=1000)
    buffer.open()
    buffer.put(Batch(600))
    buffer.put(Batch(300))
    buffer.put(Batch(200))
    assert buffer.dropped == 1
    buffer.put(VERDICT)  # the oldest messages make room for the verdict
    assert RECORD_WEIGHT + 300 <= 1000 < RECORD_WEIGHT + 900
    assert list(buffer.read(timeout=1)) == [Batch(300), VERDICT]


def test_a_phase_that_ends_without_a_verdict_ends_the_iteration():
    buffer = EventBuffer()
    buffer.open()
    buffer.put(notice(1))
    buffer.end()
    assert list(buffer.read(timeout=1)) == [notice(1)]


def test_a_reader_waits_for_messages_and_times_out():
    buffer = EventBuffer()
    buffer.open()
    reader = buffer.read(timeout=0.2)
    with pytest.raises(TimeoutError):
        next(reader)
    got = []
    done = threading.Event()

    def read():
        got.extend(buffer.read(timeout=5))
        done.set()

    threading.Thread(target=read, daemon=True).start()
    buffer.put(notice(1))
    buffer.put(VERDICT)
    assert done.wait(5)
    assert got == [notice(1), VERDICT]
