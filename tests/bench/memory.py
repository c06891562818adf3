"""Peak memory of decoder + tracker (pure) against stream length, measured with tracemalloc.

The stream is built before tracing starts, so only what the pipeline allocates counts: the
transient decoded events of one read and the tracker's state. `peak` is the high-water mark,
`retained` what is still held at the end (the tracker's state), split by emptying the
tracker's containers one at a time: finalised parts keep only their id, open parts keep their
buffers until final, and message infos are kept (one dict per message, for roles and resync).
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from actors.sse_reader import _decode
from core.sse import SseDecoder
from core.tracker import Tracker
from tests.bench.stream import ROOT, build_stream

LENGTHS = (10_000, 50_000, 200_000)


@dataclass(frozen=True, slots=True)
class Footprint:
    events: int
    peak: int
    retained: int
    infos: int  # bytes held by message infos
    ids: int  # bytes held by the ids of finalised parts
    messages: int
    open_parts: int


def _feed(chunks: Sequence[bytes]) -> Tracker:
    decoder = SseDecoder()
    tracker = Tracker(ROOT)
    for chunk in chunks:
        for event in _decode(decoder.feed(chunk)):
            tracker.apply(event)
    decoder.close()
    return tracker


def measure(min_events: int) -> Footprint:
    """Trace one run of decoder + tracker over a stream of at least `min_events` events."""
    stream = build_stream(min_events)
    gc.collect()
    tracemalloc.start()
    try:
        tracker = _feed(stream.chunks)
        retained, peak = _traced()
        messages, open_parts = len(tracker._roles), len(tracker.open_part_ids)
        tracker._roles.clear()  # private: emptied only to attribute the retained bytes
        tracker._marks.clear()
        without_infos = _traced()[0]
        tracker._final.clear()
        without_ids = _traced()[0]
    finally:
        tracemalloc.stop()
    return Footprint(
        events=stream.events,
        peak=peak,
        retained=retained,
        infos=retained - without_infos,
        ids=without_infos - without_ids,
        messages=messages,
        open_parts=open_parts,
    )


def _traced() -> tuple[int, int]:
    gc.collect()
    return tracemalloc.get_traced_memory()


def run(out: Callable[[str], None]) -> None:
    """Print peak, retained and transient KiB, per 1k events, and what is retained."""
    out(
        f"  {'events':>9} {'peak KiB':>9} {'/1k ev':>6} {'retained':>9} {'transient':>9}"
        f" {'infos KiB':>9} {'messages':>8} {'B/msg':>5} {'part ids KiB':>12} {'open parts':>10}"
    )
    f = None
    for length in LENGTHS:
        f = measure(length)
        out(
            f"  {f.events:>9,} {f.peak / 1024:>9,.0f} {f.peak / f.events * 1000 / 1024:>6.1f}"
            f" {f.retained / 1024:>9,.0f} {(f.peak - f.retained) / 1024:>9,.0f}"
            f" {f.infos / 1024:>9,.0f} {f.messages:>8,} {f.infos / max(f.messages, 1):>5.0f}"
            f" {f.ids / 1024:>12,.0f} {f.open_parts:>10}"
        )
    out("  transient = peak - retained (one read's decoded events); open parts = buffers held.")
    out("  Part buffers are dropped on finalisation; what grows is one info per message and")
    ratio = f.events / max(f.messages, 1) if f else 0
    out(f"  one id per finalised part (these captures hold one message per {ratio:.0f} events).")
