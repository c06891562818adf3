"""runner.gc_policy: what the CLI does to Python's collector."""

from __future__ import annotations

import gc
import weakref

import pytest

from runner import gc_policy

pytestmark = pytest.mark.timeout(30)


class _Node:
    me: _Node | None = None


def test_tune_freezes_what_exists_and_raises_the_first_threshold():
    before = gc.get_threshold()
    try:
        gc_policy.tune()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (gc_policy.YOUNG, before[1], before[2])
        cycle = _Node()
        cycle.me = cycle
        gone = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert gone() is None  # what is made after the freeze is still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
