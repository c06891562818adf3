"""core.ids: ascending ids in opencode's form."""

from __future__ import annotations

import re

import pytest

from core.ids import AscendingIds

pytestmark = pytest.mark.timeout(10)

SHAPE = re.compile(r"^msg_[0-9a-f]{12}[0-9A-Za-z]{14}$")


def test_ids_have_opencodes_shape_and_time_stamp():
    ids = AscendingIds(clock_ms=lambda: 1_700_000_000_000, choice=lambda chars: chars[0])
    made = ids.next("msg")
    assert SHAPE.match(made), made
    assert made == f"msg_{(1_700_000_000_000 * 0x1000) & 0xFFFFFFFFFFFF:012x}" + "0" * 14


def test_ids_made_in_the_same_millisecond_still_ascend():
    ids = AscendingIds(clock_ms=lambda: 5)
    made = [ids.next("prt") for _ in range(100)]
    assert made == sorted(made)
    assert len(set(made)) == 100


def test_an_id_sorts_after_the_one_given_even_from_a_clock_behind():
    server = "msg_22cf324db000u1w3vOPtlCihtu"  # made by opencode 1.18.33
    behind = (0x22CF324DB000 >> 12) - 1000  # a second behind the server's clock (its 48 bits)
    ids = AscendingIds(clock_ms=lambda: behind)
    assert ids.next("msg", after=server) > server
    assert ids.next("msg", after="not-an-id") > "msg_000000000000"
