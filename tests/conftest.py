"""Fixtures shared by every layer of tests."""

from __future__ import annotations

import pykka
import pytest

# Actors a module- or session-scoped fixture owns (a shared server): they outlive each test and
# their fixture stops them.
LONG_LIVED: set[pykka.ActorRef] = set()


@pytest.fixture(autouse=True)
def _stop_all_actors():
    """No actor outlives its test, but those of a longer-lived fixture."""
    yield
    for ref in pykka.ActorRegistry.get_all():
        if ref not in LONG_LIVED:
            ref.stop()
