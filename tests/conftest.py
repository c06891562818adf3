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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that start opencode first, the unit tests last (each group in its own order).

    With parallel workers (`make test`: `--dist worksteal`) the long tests then start at once and
    the quick ones fill the workers that finish early, instead of one worker left with a queue
    of long tests at the end."""
    items.sort(key=lambda item: item.path.parent.name == "unit")
