"""runner.tuning: what the CLI does to Python's collector and to glibc's allocator."""

from __future__ import annotations

import gc
import platform
import subprocess
import sys
import weakref

import pytest

from runner import tuning
from tests.helpers import PROJECT_ROOT

pytestmark = pytest.mark.timeout(60)

GLIBC = platform.libc_ver()[0] == "glibc"


class _Node:
    me: _Node | None = None


def test_tune_freezes_what_exists_and_raises_the_first_threshold():
    before = gc.get_threshold()
    try:
        tuning.tune()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (tuning.YOUNG, before[1], before[2])
        cycle = _Node()
        cycle.me = cycle
        gone = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert gone() is None  # what is made after the freeze is still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


# Frees one large block (glibc then raises its threshold to that size), then makes and frees
# eight 1 MiB blocks: with the dynamic threshold they come from the heap and stay resident.
_PROBE = """
import sys
from runner import tuning
fixed = tuning.fix_mmap_threshold() if sys.argv[1] == "fixed" else None
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
first = bytearray(16 << 20)
del first
before = rss()
blocks = [bytearray(1 << 20) for _ in range(8)]
blocks.append(bytearray(64))
del blocks[:8]
print(fixed, rss() - before)
"""


def _kept_kib(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    return out[0], int(out[1])


def test_a_fixed_mmap_threshold_gives_large_blocks_back_where_glibc_is():
    fixed, kept_fixed = _kept_kib("fixed")
    assert fixed == str(GLIBC)
    if GLIBC:
        _, kept_dynamic = _kept_kib("dynamic")
        assert kept_dynamic >= 6 << 10  # glibc's default keeps most of the 8 MiB
        assert kept_fixed < 1 << 10
