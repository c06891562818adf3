"""Event-pipeline throughput: a plain loop against the decoder, the tracker and the actors.

Every path consumes the same 64 KiB chunks. Path (a') frames with sseclient-py instead of our
`SseDecoder`, batched per read as the reader would have to: it is the measurement behind the
choice of framing (README, dependency notes). The actor paths run as the product does: the
caller decodes each read (the reader's job) and tells a real `TrackerActor` either one
`EventsReceived` per read (a tuple of events) or one per event; the tracker publishes its
`Tracked` batches to a counting actor. The clock stops when the tracker has answered an `ask`
queued behind the last batch and the counter has answered one queued behind its last `Tracked`.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pykka

from actors._supervised import SupervisedActor
from actors.sse_reader import _decode
from actors.tracker import TrackerActor
from core.sse import SseDecoder
from core.tracker import Tracker
from messages.pipeline import Tracked
from messages.stream import EventsReceived
from runner.compose import RENDERER, Router
from tests.bench.stream import ROOT, Stream, build_stream

MIN_EVENTS = 100_000
REPEATS = 3
ASK_TIMEOUT = 300.0
_COUNT = object()


def baseline(chunks: Sequence[bytes]) -> int:
    """The plain single loop: split on blank lines, strip `data: `, `json.loads`."""
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
    return sum(len(_decode(decoder.feed(chunk))) for chunk in chunks)


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
        for event in _decode(decoder.feed(chunk)):
            tracker.apply(event)
            count += 1
    return count


class CounterActor(SupervisedActor):
    """The downstream consumer: counts the raw events and effects of every `Tracked`."""

    def __init__(self) -> None:
        super().__init__()
        self.raw = 0
        self.effects = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Tracked):
            self.raw += len(message.raw)
            self.effects += len(message.effects)
            return None
        return (self.raw, self.effects) if message is _COUNT else None


def _tell_all(tracker: pykka.ActorRef, chunks: Sequence[bytes], *, batched: bool) -> None:
    decoder = SseDecoder()
    for chunk in chunks:
        events = _decode(decoder.feed(chunk))
        if batched:
            if events:
                tracker.tell(EventsReceived(events=events, connection=1))
        else:
            for event in events:
                tracker.tell(EventsReceived(events=(event,), connection=1))


def actor_path(chunks: Sequence[bytes], *, batched: bool) -> int:
    """Decode each read, tell a real `TrackerActor`; wait until the counter has seen it all."""
    counter = CounterActor.start()
    router = Router()  # the product's routing table; the counter stands in for the renderer
    router.connect_actor(RENDERER, counter)
    tracker = TrackerActor.start(root_session_id=ROOT, publish=router.publish)
    try:
        tracker.proxy().actor_urn.get(timeout=ASK_TIMEOUT)
        _tell_all(tracker, chunks, batched=batched)
        tracker.proxy().session_ids().get(timeout=ASK_TIMEOUT)
        raw, _effects = counter.ask(_COUNT, timeout=ASK_TIMEOUT)
    finally:
        tracker.stop()
        counter.stop()
    return raw


def _timed(path: Callable[[Sequence[bytes]], int], stream: Stream) -> tuple[float, int]:
    """Median seconds over `REPEATS` runs, and the count the path reported."""
    times = []
    count = 0
    for _ in range(REPEATS):
        start = time.perf_counter()
        count = path(stream.chunks)
        times.append(time.perf_counter() - start)
    return statistics.median(times), count


PATHS: tuple[tuple[str, Callable[[Sequence[bytes]], int]], ...] = (
    ("baseline: split + json.loads", baseline),
    ("(a) SseDecoder + json.loads", decoder_json),
    ("(a') sseclient-py + json.loads", sseclient_json),
    ("(b) decoder + Tracker.apply", decoder_tracker),
    ("(c) TrackerActor, batch per read", lambda chunks: actor_path(chunks, batched=True)),
    ("(d) TrackerActor, one per event", lambda chunks: actor_path(chunks, batched=False)),
)


def run(out: Callable[[str], None]) -> None:
    """Print events/s and the ratio to the baseline for every path."""
    stream = build_stream(MIN_EVENTS)
    out(
        f"stream: {stream.events:,} events, {stream.size / 2**20:.1f} MiB, "
        f"{len(stream.chunks)} chunks of 64 KiB; median of {REPEATS} runs"
    )
    out(f"  {'path':<34} {'events':>9} {'seconds':>8} {'events/s':>10} {'ratio':>6}")
    rates = []
    for name, path in PATHS:
        seconds, count = _timed(path, stream)
        rates.append(stream.events / seconds)
        ratio = rates[-1] / rates[0]
        out(f"  {name:<34} {count:>9,} {seconds:>8.3f} {rates[-1]:>10,.0f} {ratio:>5.2f}x")
    out("  (events: what each path counted; the actor paths count the raw events forwarded)")
    _, decoded, framed, pure, batched, single = rates
    out(f"  sseclient-py framing over SseDecoder (a')/(a): {framed / decoded:.2f}x")
    out(f"  tracker over decoding (b)/(a): {pure / decoded:.2f}x")
    out(f"  actor hand-off over the pure tracker (c)/(b): {batched / pure:.2f}x")
    out(f"  batching gain (c)/(d): {batched / single:.2f}x")
