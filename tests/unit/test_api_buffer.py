"""The embedding API's event buffer: bounded, and the closing items always fit."""

from __future__ import annotations

import queue

import pytest

from runner.api import _put_last

pytestmark = pytest.mark.timeout(10)


def test_the_event_buffer_keeps_the_closing_items_when_full():
    events = queue.Queue(maxsize=2)
    events.put("a")
    events.put("b")
    _put_last(events, "verdict")
    assert [events.get_nowait(), events.get_nowait()] == ["b", "verdict"]


def test_the_closing_item_goes_straight_in_when_there_is_room():
    events = queue.Queue(maxsize=2)
    _put_last(events, "end")
    assert events.get_nowait() == "end"
