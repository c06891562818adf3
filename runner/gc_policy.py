"""The CLI's settings for Python's cyclic garbage collector (the embedding API leaves its
caller's process alone; `tune()` is there for a caller that wants the same).

A streamed event becomes a handful of dicts and lists, and the stream's batches wait in the
actors' inboxes: with the default thresholds a young-generation collection runs every 700 new
containers, and every tenth of those scans everything that has survived since, the thousands of
objects the imports left behind among them. Over a 100,000-event stream that was 0.15-0.2 s of
1.6 s (`make bench`, pipeline). Those objects are never garbage, so `tune()` moves them out of
the collector's sight (`gc.freeze()`) and lets the young generation grow to `YOUNG` containers
before it is scanned. Reference counting still frees every event as soon as the last consumer
drops it; only cycles wait a little longer.
"""

from __future__ import annotations

import gc

YOUNG = 5000  # CPython's default is 700


def tune() -> None:
    """Freeze what exists now (call it once the imports are done) and raise the first
    threshold; the older generations keep their defaults."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
