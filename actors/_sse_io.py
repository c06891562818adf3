"""The SSE reader's IO at the socket level: reading the body as it arrives, decoding frames,
finding the socket to shut from another thread."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import requests

from actors.logs import logger
from core import jsonfast
from core.chunked import ChunkedError, Dechunker
from core.protocol import EventDecoder
from core.redact import StreamRedactor
from core.sse import SseFrame

READ_SIZE = 65536


def body_reader(response: requests.Response) -> Callable[[], bytes]:
    """A function returning the body's next bytes, as many as have arrived (b"" at its end).

    opencode sends one HTTP chunk per event, and http.client returns one chunk per read: read
    through it, every read would be a batch of one event, and every event would wake every
    consumer. So the bytes are read from the connection's buffered file below http.client, as
    many as the socket holds, and the chunk framing is taken off here (`core.chunked`). This
    reaches into http.client's `fp` (as the watchdog reaches into its socket); for a body that is
    not chunked (http.client then says `chunk_left = "UNKNOWN"`), compressed or already partly
    read, or when `fp` is not there, it reads through the layers.
    """
    raw = response.raw
    inner = getattr(raw, "_fp", None)
    fp = getattr(inner, "fp", None)
    chunked = getattr(inner, "chunked", False) and getattr(inner, "chunk_left", 0) is None
    if not chunked or not hasattr(fp, "read1") or response.headers.get("Content-Encoding"):
        return lambda: raw.read1(READ_SIZE)
    dechunker = Dechunker()

    def read() -> bytes:
        while not dechunker.done:
            data = fp.read1(READ_SIZE)
            if not data:  # the connection ended before the last chunk: a break, not an end
                raise ChunkedError("the body ended inside its chunked framing")
            payload = dechunker.feed(data)
            if payload:
                return payload
        return b""

    return read


def decode(
    frames: list[SseFrame],
    redactor: StreamRedactor | None = None,
    model: EventDecoder | None = None,
) -> tuple[tuple[dict[str, Any], ...], tuple[str, ...]]:
    """The JSON objects of `frames` and their JSON text (kept, so the transcript writes it as
    received instead of encoding it again), secrets masked when a redactor is given. `model`
    (the wire's `event_decoder`) turns each object into the runner's events, each then with
    its own text."""
    events = []
    texts = []
    for frame in frames:
        data = frame.data if redactor is None else redactor.frame(frame.data)
        try:
            event = jsonfast.loads(data)
        except ValueError:
            logger.warning("sse: dropped a frame that is not JSON: {!r}", data[:200])
            continue
        if not isinstance(event, dict):
            continue
        for one in (event,) if model is None else model(event):
            text = data if one is event else jsonfast.compact(one)
            kept = one if redactor is None else redactor.event(one)
            events.append(kept)
            texts.append(text if kept is one else jsonfast.compact(kept))
    return tuple(events), tuple(texts)


def socket_of(response: requests.Response) -> socket.socket | None:
    """The socket under a streaming response, to shut it from another thread.

    urllib3 2.x keeps it on the connection, except when the server said `Connection: close`:
    then http.client hands it to the response's file object alone.
    """
    raw = response.raw
    connection = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        reader = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(reader, "raw", None), "_sock", None)
    return sock
