"""Latency: from a frame leaving the server to its text being printed, at a steady rate.

`tests.bench.sse_server paced` sends one assistant text part of the root session as
`message.part.delta` events, `RATE` a second, each delta's text carrying its send time
(`t<perf_counter_ns> `). The phase's actors (`tests.bench.harness`) render in `plain` mode to a
sink whose `write` reads those stamps out of what it is given and records now - sent for each
one. The server is a process of its own, like opencode; `perf_counter` is CLOCK_MONOTONIC on
Linux, one clock for every process (checked: `clock` in the results).
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.harness import PhaseActors
from tests.bench.sse_server import SseServer

_STAMP = re.compile(r"t(\d{6,}) ")
DRAIN_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class Sizes:
    """How fast and for how long the deltas come."""

    rate: float = 2_000.0
    seconds: float = 10.0


class StampSink:
    """The renderer's `out`: each stamp in a write is one delta printed, now."""

    def __init__(self) -> None:
        self.latencies_ns: list[int] = []

    def write(self, text: str) -> int:
        """Record now - sent for every stamp in `text`."""
        now = time.perf_counter_ns()
        self.latencies_ns.extend(now - int(stamp) for stamp in _STAMP.findall(text))
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered."""

    def isatty(self) -> bool:
        """Not a terminal."""
        return False


def percentile(ordered: list[int], fraction: float) -> int:
    """Nearest-rank percentile of a sorted list."""
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def run(out: Callable[[str], None], sizes: Sizes, line: int = 1) -> dict[str, Any]:
    """Print p50, p99 and max in ms and how many deltas were measured; return the figures.
    `line=2`: opencode 2.x's deltas (`session.text.delta`), decoded as the runner does."""
    sink = StampSink()
    sent = round(sizes.rate * sizes.seconds)
    argv = ("--line", str(line), "paced", str(sizes.rate), str(sizes.seconds))
    with (
        SseServer(*argv) as server,
        tempfile.TemporaryDirectory(prefix="runner-latency-") as tmp,
        PhaseActors(server.url, Path(tmp), mode="plain", out=sink, line=line) as phase,
    ):
        phase.start()
        phase.drain(sizes.seconds + DRAIN_TIMEOUT)
    ordered = sorted(sink.latencies_ns)
    if not ordered:
        raise RuntimeError("no delta was printed: nothing to measure")
    figures = {
        "p50": percentile(ordered, 0.50) / 1e6,
        "p99": percentile(ordered, 0.99) / 1e6,
        "max": ordered[-1] / 1e6,
        "mean": sum(ordered) / len(ordered) / 1e6,
        "measured": len(ordered),
        "sent": sent,
        "rate_per_s": sizes.rate,
        "seconds": sizes.seconds,
        "fell_behind": phase.watch.fell_behind,
        "clock": time.get_clock_info("perf_counter").implementation,
    }
    out(
        f"  {sent:,} text deltas at {sizes.rate:,.0f}/s, rendered in plain mode:"
        f" {len(ordered):,} measured"
    )
    out(
        f"  send to print, ms: p50 {figures['p50']:.2f}  p99 {figures['p99']:.2f}"
        f"  max {figures['max']:.2f}  mean {figures['mean']:.2f}"
    )
    return figures
