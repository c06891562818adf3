"""Fixtures shared by every layer of tests."""

from __future__ import annotations

import pykka
import pytest


@pytest.fixture(autouse=True)
def _stop_all_actors():
    """No actor outlives its test."""
    yield
    pykka.ActorRegistry.stop_all()
