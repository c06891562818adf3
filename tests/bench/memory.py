"""Heap of the pure decoder + tracker against stream length (tracemalloc), to explain the RSS.

The stream is built before tracing starts, so only what the pipeline allocates counts: the
transient decoded events of one read and the tracker's state. `peak` is the high-water mark,
`retained` what is still held at the end (the tracker's state: what grows with the stream);
`open parts` are the parts whose buffers are still held (not final yet).
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.sse import SseDecoder
from core.tracker import Tracker
from tests.bench.stream import ROOT, build_stream


@dataclass(frozen=True, slots=True)
class Sizes:
    """The stream lengths measured (at least this many events each)."""

    lengths: tuple[int, ...] = (10_000, 100_000)


def _feed(chunks: Sequence[bytes]) -> Tracker:
    decoder = SseDecoder()
    tracker = Tracker(ROOT)
    for chunk in chunks:
        for frame in decoder.feed(chunk):
            tracker.apply(json.loads(frame.data))
    decoder.close()
    return tracker


def measure(min_events: int) -> dict[str, int]:
    """Trace one run of decoder + tracker over a stream of at least `min_events` events."""
    stream = build_stream(min_events)
    gc.collect()
    tracemalloc.start()
    try:
        tracker = _feed(stream.chunks)
        gc.collect()
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "events": stream.events,
        "peak_bytes": peak,
        "retained_bytes": retained,
        "open_parts": len(tracker.open_part_ids),
    }


def run(out: Callable[[str], None], sizes: Sizes) -> dict[str, Any]:
    """Print peak, retained and transient KiB and bytes retained per event; return them."""
    out(
        f"  {'events':>9} {'peak KiB':>9} {'retained KiB':>12} {'B/event':>8}"
        f" {'transient KiB':>13} {'open parts':>10}"
    )
    figures = []
    for length in sizes.lengths:
        f = measure(length)
        figures.append(f)
        out(
            f"  {f['events']:>9,} {f['peak_bytes'] / 1024:>9,.0f}"
            f" {f['retained_bytes'] / 1024:>12,.0f} {f['retained_bytes'] / f['events']:>8.1f}"
            f" {(f['peak_bytes'] - f['retained_bytes']) / 1024:>13,.0f} {f['open_parts']:>10}"
        )
    out("  retained: the tracker's state at the end; transient = peak - retained (one read).")
    return {"runs": figures}
