"""The CLI's settings for Python's cyclic garbage collector and for glibc's allocator (the
embedding API leaves its caller's process alone; `tune()` is there for a caller that wants the
same). Each was measured by `make bench` (README, Benchmarks).

The collector. A streamed event becomes a handful of dicts and lists, and the stream's batches
wait in the actors' inboxes: with the default thresholds a young-generation collection runs
every 700 new containers, and every tenth of those scans everything that has survived since,
the thousands of objects the imports left behind among them. Over a 100,000-event stream that
was 0.15-0.2 s of 1.6 s. Those objects are never garbage, so `tune()` moves them out of the
collector's sight (`gc.freeze()`) and lets the young generation grow to `YOUNG` containers
before it is scanned. Reference counting still frees every event as soon as the last consumer
drops it; only cycles wait a little longer.

The allocator. A long answer ends with a few events the size of the whole text (the final
part, the snapshot of the closing sync), and each consumer makes its copy for a moment. glibc
serves a block over `MMAP_THRESHOLD` with its own mapping, returned to the system when freed,
but raises that threshold to the size of every such block freed: from the second large text
on, the copies come from the heap, and the heap keeps the peak. A fixed threshold (what
`MALLOC_MMAP_THRESHOLD_` sets) keeps large, short-lived blocks out of the heap: the peak RSS of
a 100,000-delta phase fell from 57-59 MB to 53-54 MB. Elsewhere than glibc, nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import platform

YOUNG = 5000  # CPython's default is 700
MMAP_THRESHOLD = 128 << 10  # glibc's own starting value, kept fixed
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def tune() -> None:
    """Freeze what exists now (call it once the imports are done), raise the collector's
    first threshold (the older generations keep their defaults), fix glibc's mmap threshold."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
    fix_mmap_threshold()


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at `MMAP_THRESHOLD`; False where there is no glibc."""
    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallopt", None)
    return mallopt is not None and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
