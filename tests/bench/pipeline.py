"""Event-pipeline throughput: the product's pipeline against a bare loop, on the same bytes.

Over loopback (the figures that count): `tests.bench.sse_server` serves a stream built from the
captures at full speed, one HTTP chunk per event as opencode 1.18.33 writes them.
- bare loop: requests `stream=True`, `iter_content`, split on blank lines, `json.loads`.
- runner: the phase's actors wired as `runner/supervisor.py` wires them (`tests.bench.harness`:
  the `SseReaderActor` behind a `StreamHub`, the tracker, transcript to a temp file, renderer
  printing NDJSON (`--json`) to a null sink, termination, responder, sync). The clock runs from
  the reader's start until the reader's end-of-stream `StreamDropped` has reached the phase's
  `events` consumer and every actor has answered an `ask` queued behind its backlog.
The same two once more with the stream in 64 KiB HTTP chunks (many events per read) show what
batching reads would buy.

In memory (no socket), on the same stream in 64 KiB chunks: the same bare loop; (a) our
`SseDecoder` + `json.loads`; (a') sseclient-py + `json.loads`, batched per read as the reader
would have to (the measurement behind the choice of framing, README's dependency notes); (b)
(a) + the pure `Tracker.apply` on every event.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from core.sse import SseDecoder
from core.tracker import Tracker
from tests.bench.harness import NullSink, PhaseActors
from tests.bench.sse_server import SseServer
from tests.bench.stream import ROOT, Stream, build_stream

TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big the stream is and how many times each path runs (median)."""

    events: int = 100_000
    repeats: int = 3


# -- over loopback ---------------------------------------------------------------------------------


def bare_loop(url: str, line: int = 1) -> int:
    """The plain single loop a script would write: split on blank lines, `json.loads`."""
    route = "/api/event" if line == 2 else "/event"
    with requests.get(url + route, stream=True, timeout=(5, TIMEOUT)) as response:
        return baseline(response.iter_content(chunk_size=65536))


@dataclass(frozen=True, slots=True)
class ProductRun:
    """One run of the product's pipeline."""

    seconds: float
    forwarded: int  # raw events of the session tree the tracker passed on
    transcript_events: int  # raw event lines in the transcript
    fell_behind: int  # times the tracker dropped batches (and resynced them)


def product(server: SseServer, root: Path, line: int = 1) -> ProductRun:
    """The phase's actors on the server's stream, printing NDJSON (`--json`) to a null sink."""
    with PhaseActors(server.url, root, mode="json", out=NullSink(), line=line) as phase:
        server.arm()
        start = time.perf_counter()
        phase.start()
        phase.drain(TIMEOUT)
        seconds = time.perf_counter() - start
    watch = phase.watch
    return ProductRun(seconds, watch.forwarded, phase.transcript_events(), watch.fell_behind)


def _loopback(sizes: Sizes, framing: str, line: int = 1) -> dict[str, Any]:
    """Bare loop and product alternately, `repeats` times each, on one server."""
    bare: list[float] = []
    runs: list[ProductRun] = []
    counts: set[int] = set()
    argv = ("--line", str(line), "replay", str(sizes.events), "--framing", framing)
    with SseServer(*argv) as server:
        for index in range(sizes.repeats):
            server.arm()
            start = time.perf_counter()
            counts.add(bare_loop(server.url, line))
            bare.append(time.perf_counter() - start)
            with tempfile.TemporaryDirectory(prefix=f"runner-pipe-{index}-") as tmp:
                runs.append(product(server, Path(tmp), line))
    (events,) = counts
    product_s = statistics.median(run.seconds for run in runs)
    bare_s = statistics.median(bare)
    return {
        "events": events,
        "baseline_s": bare_s,
        "runner_s": product_s,
        "baseline_eps": events / bare_s,
        "runner_eps": events / product_s,
        "ratio": bare_s / product_s,
        "runner_forwarded": runs[-1].forwarded,
        "runner_transcript_events": runs[-1].transcript_events,
        "runner_fell_behind": max(run.fell_behind for run in runs),
        "baseline_runs_s": bare,
        "runner_runs_s": [run.seconds for run in runs],
    }


# -- in memory -------------------------------------------------------------------------------------


def baseline(chunks: Iterable[bytes]) -> int:
    """The bare loop on chunks, read from a socket or held in memory."""
    buffer = b""
    count = 0
    for chunk in chunks:
        frames = (buffer + chunk).split(b"\n\n")
        buffer = frames.pop()
        for frame in frames:
            if frame.startswith(b"data: "):
                json.loads(frame[6:])
                count += 1
    return count


def decoder_json(chunks: Sequence[bytes]) -> int:
    """`SseDecoder` + `json.loads`, as the reader decodes each read."""
    decoder = SseDecoder()
    count = 0
    for chunk in chunks:
        events = [json.loads(frame.data) for frame in decoder.feed(chunk)]
        count += len(events)
    return count


def sseclient_json(chunks: Sequence[bytes]) -> int:
    """sseclient-py framing + `json.loads`, one batch per read: the chunk source hands off the
    events of the previous read before it gives sseclient the next one."""
    from sseclient import SSEClient  # pinned for this comparison only; nothing else uses it

    batch: list[Any] = []
    handed = 0

    def source() -> Iterator[bytes]:
        nonlocal handed
        for chunk in chunks:
            handed += len(batch)
            batch.clear()
            yield chunk

    for event in SSEClient(source()).events():
        batch.append(json.loads(event.data))
    return handed + len(batch)


def decoder_tracker(chunks: Sequence[bytes]) -> int:
    """Decoder + the pure `Tracker.apply` on every event."""
    decoder = SseDecoder()
    tracker = Tracker(ROOT)
    count = 0
    for chunk in chunks:
        for frame in decoder.feed(chunk):
            tracker.apply(json.loads(frame.data))
            count += 1
    return count


IN_MEMORY: tuple[tuple[str, str, Callable[[Sequence[bytes]], int]], ...] = (
    ("baseline", "bare loop: split + json.loads", baseline),
    ("a", "(a) SseDecoder + json.loads", decoder_json),
    ("a_prime", "(a') sseclient-py + json.loads", sseclient_json),
    ("b", "(b) (a) + Tracker.apply", decoder_tracker),
)


def _in_memory(stream: Stream, repeats: int) -> dict[str, dict[str, float]]:
    figures = {}
    for key, _name, path in IN_MEMORY:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            path(stream.chunks)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        figures[key] = {"seconds": seconds, "eps": stream.events / seconds}
    return figures


# -- report ----------------------------------------------------------------------------------------


def run(out: Callable[[str], None], sizes: Sizes) -> dict[str, Any]:
    """Print every path's events/s and ratio; return the figures (`results.json`'s `pipeline`)."""
    real = _headline(out, sizes, 1, "(as opencode sends)")
    batched = _loopback(sizes, "64k")
    out("  loopback, 64 KiB HTTP chunks (many events per read):")
    _row(out, "bare loop", batched["baseline_s"], batched["events"], 1)
    _row(out, "runner pipeline", batched["runner_s"], batched["events"], batched)
    _product_note(out, batched)
    stream = build_stream(sizes.events)
    memory = _in_memory(stream, sizes.repeats)
    out(f"  in memory, 64 KiB chunks, {stream.size / 2**20:.1f} MiB:")
    for key, name, _path in IN_MEMORY:
        eps = memory[key]["eps"]
        out(
            f"  {name:<40} {memory[key]['seconds']:>8.3f} {eps:>10,.0f}"
            f" {eps / memory['baseline']['eps']:>5.2f}x"
        )
    framing = memory["a_prime"]["eps"] / memory["a"]["eps"]
    out(f"  sseclient-py framing over SseDecoder (a')/(a): {framing:.2f}x")
    out(f"  tracker over decoding (b)/(a): {memory['b']['eps'] / memory['a']['eps']:.2f}x")
    return {
        "runner_eps": real["runner_eps"],
        "baseline_eps": real["baseline_eps"],
        "ratio": real["ratio"],
        "events": real["events"],
        "framing": "one HTTP chunk per event",
        "loopback": real,
        "loopback_64k_chunks": batched,
        "in_memory": memory,
    }


def run_2(out: Callable[[str], None], sizes: Sizes) -> dict[str, Any]:
    """The loopback figures on opencode 2.x's stream (its captures, its envelope, decoded into
    the runner's events by `EventsV2` on the reader's thread)."""
    real = _headline(out, sizes, 2, "2.x's events")
    return {
        "runner_eps": real["runner_eps"],
        "baseline_eps": real["baseline_eps"],
        "ratio": real["ratio"],
        "events": real["events"],
        "loopback": real,
    }


def _headline(out: Callable[[str], None], sizes: Sizes, line: int, what: str) -> dict[str, Any]:
    """The figures that count (one HTTP chunk per event, over loopback), printed."""
    real = _loopback(sizes, "event", line)
    out(
        f"  loopback, one HTTP chunk per event, {what}: {real['events']:,} events,"
        f" median of {sizes.repeats} alternating runs"
    )
    out(f"  {'path':<40} {'seconds':>8} {'events/s':>10} {'ratio':>6}")
    _row(out, "bare loop (requests, split, json.loads)", real["baseline_s"], real["events"], 1)
    _row(out, "runner pipeline (reader ... renderer)", real["runner_s"], real["events"], real)
    _product_note(out, real)
    return real


def _row(out: Callable[[str], None], name: str, seconds: float, events: int, base: Any) -> None:
    ratio = 1.0 if base == 1 else base["ratio"]
    out(f"  {name:<40} {seconds:>8.3f} {events / seconds:>10,.0f} {ratio:>5.2f}x")


def _product_note(out: Callable[[str], None], figures: dict[str, Any]) -> None:
    behind = figures["runner_fell_behind"]
    note = f"; fell behind {behind} time(s): batches dropped and resynced" if behind else ""
    out(
        f"  {'':<40} the tracker forwarded {figures['runner_forwarded']:,} events of the"
        f" session tree, the transcript holds {figures['runner_transcript_events']:,}{note}"
    )
