"""Large SSE streams built from the recorded captures, as the bytes `GET /event` would send.

Every capture's events are concatenated once into a template; each copy of the template gets
its own part, message and event ids (a per-copy suffix), so the tracker sees new parts and
messages in every copy instead of ignoring finalised repeats. Every session id becomes one
root session, so the whole stream belongs to the tracked session tree (one long session).
`event_frames` cuts a body into its events (opencode writes one HTTP chunk each). The latency
benchmark's stream is built here too: a text part of the root session, then its deltas.
`line=2` builds each from opencode 2.x's captures and shapes (`tests/fixtures/captures-2`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from tests.helpers import CAPTURES, PROJECT_ROOT

CAPTURES_2 = PROJECT_ROOT / "tests" / "fixtures" / "captures-2"

ROOT = "ses_benchroot"
CHUNK_SIZE = 64 * 1024
_IDS = re.compile(r'"(prt|msg|evt)_([0-9A-Za-z]+)"')
_SESSIONS = re.compile(r'"ses_[0-9A-Za-z]+"')
_MARK = "\x00"  # never in JSON text (it would be escaped), so safe as a suffix placeholder


@dataclass(frozen=True, slots=True)
class Stream:
    """A stream as the reader receives it: byte chunks, and how many events they hold."""

    chunks: tuple[bytes, ...]
    events: int

    @property
    def size(self) -> int:
        return sum(map(len, self.chunks))


def recorded_payloads(line: int = 1) -> list[str]:
    """The `data:` payload of every event of every event-stream capture, in file order."""
    payloads = []
    for path in sorted((CAPTURES_2 if line == 2 else CAPTURES).glob("*.event.jsonl")):
        for record in path.read_text().splitlines():
            for raw in json.loads(record)["raw"]:
                if raw.startswith("data: "):
                    payloads.append(raw[6:])
    return payloads


@cache
def _template(line: int) -> tuple[str, int]:
    """One copy of the captures as SSE text, ids marked for their per-copy suffix."""
    payloads = recorded_payloads(line)
    text = "".join(f"data: {payload}\n\n" for payload in payloads)
    text = _SESSIONS.sub(f'"{ROOT}"', text)
    return _IDS.sub(rf'"\1_\2_{_MARK}"', text), len(payloads)


def stream_data(min_events: int, line: int = 1) -> tuple[bytes, int]:
    """At least `min_events` events (whole copies of the captures) as one SSE body, and the
    number of events it holds."""
    template, per_copy = _template(line)
    copies = math.ceil(min_events / per_copy)
    data = "".join(template.replace(_MARK, f"c{copy}") for copy in range(copies)).encode()
    return data, copies * per_copy


def build_stream(min_events: int, chunk_size: int = CHUNK_SIZE, line: int = 1) -> Stream:
    """At least `min_events` events (whole copies of the captures), split in `chunk_size`."""
    data, events = stream_data(min_events, line)
    chunks = tuple(data[i : i + chunk_size] for i in range(0, len(data), chunk_size))
    return Stream(chunks=chunks, events=events)


def event_frames(data: bytes) -> list[bytes]:
    """An SSE body cut into its events, each with its blank line (how opencode writes them:
    one HTTP chunk per event)."""
    return [frame + b"\n\n" for frame in data.split(b"\n\n") if frame]


# -- a steady stream of text deltas, for the latency benchmark -----------------------------------

DELTA_MESSAGE = "msg_benchlatency"
DELTA_PART = "prt_benchlatency"


def delta_preamble(line: int = 1) -> list[dict[str, Any]]:
    """What precedes the deltas: the connection, the root's assistant message, its text part."""
    if line == 2:  # a step of the root (its assistant message) and its text, in 2.x's envelope
        step = {"sessionID": ROOT, "assistantMessageID": DELTA_MESSAGE, "agent": "build"}
        text = {"sessionID": ROOT, "assistantMessageID": DELTA_MESSAGE, "ordinal": 0}
        return [
            {"id": "evt_benchconnected", "type": "server.connected", "data": {}},
            _event_2("session.step.started", {**step, "model": {"id": "m", "providerID": "p"}}),
            _event_2("session.text.started", text),
        ]
    info = {"id": DELTA_MESSAGE, "role": "assistant", "sessionID": ROOT, "time": {"created": 0}}
    part = {"id": DELTA_PART, "messageID": DELTA_MESSAGE, "sessionID": ROOT, "type": "text"}
    return [
        {"type": "server.connected", "properties": {}},
        {"type": "message.updated", "properties": {"sessionID": ROOT, "info": info}},
        {
            "type": "message.part.updated",
            "properties": {"sessionID": ROOT, "part": {**part, "text": "", "time": {"start": 0}}},
        },
    ]


def delta_event(text: str, line: int = 1) -> dict[str, Any]:
    """One `message.part.delta` of the preamble's text part (2.x: `session.text.delta`)."""
    if line == 2:
        data = {"sessionID": ROOT, "assistantMessageID": DELTA_MESSAGE, "ordinal": 0}
        return _event_2("session.text.delta", {**data, "delta": text})
    props = {"sessionID": ROOT, "messageID": DELTA_MESSAGE, "partID": DELTA_PART}
    return {"type": "message.part.delta", "properties": {**props, "field": "text", "delta": text}}


def sse_frame(event: dict[str, Any]) -> bytes:
    """One event as the bytes of its SSE frame."""
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def _event_2(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """An opencode 2.x event in its envelope."""
    return {"id": "evt_bench", "created": 0, "type": kind, "location": {}, "data": data}
