"""SseReaderActor: owns the `GET /event` connection and keeps it alive.

Theory of operation. A daemon reader thread does the blocking read: connect (requests,
`stream=True`), feed each chunk to the pure `SseDecoder`, `json.loads` the frames, and hand
all the events of one read to the subscribers as ONE `EventsReceived` batch (the hot path).
`StreamConnected` is published only when `server.connected` arrives, never on mere headers.
A break (EOF, a truncated frame, a network error, or the watchdog) is `StreamDropped`, then a
reconnect with tenacity's jittered exponential backoff; if the broken connection had been
healthy for `healthy_after` seconds the budget starts afresh. 401 and 404 are not retried,
and neither is a spent budget: both are `StreamFailed`. The watchdog runs in the actor, on a
tick, against an injected clock: no bytes for three heartbeat periods and it shuts the socket,
which the reader thread then sees as a break. `on_stop` shuts the socket so the thread ends.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pykka
import requests
import tenacity
import urllib3
from loguru import logger

from actors._process import start_thread
from actors._supervised import Report, SupervisedActor
from actors._worker import start_ticker
from actors.opencode_client import OpencodeClient
from core.sse import SseDecoder
from messages.stream import EventsReceived, StreamConnected, StreamDropped, StreamFailed


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconnectPolicy:
    """How hard the reader tries to get the stream back."""

    attempts: int = 30
    outage: float = 60.0  # give up when nothing has arrived for this long
    initial: float = 0.25
    maximum: float = 8.0
    healthy_after: float = 30.0
    heartbeat: float = 10.0
    connect_timeout: float = 5.0


class _BrokenError(Exception):
    """The stream broke after it was up; retry."""

    def __init__(self, reason: str, *, healthy: bool) -> None:
        super().__init__(reason)
        self.healthy = healthy


class _FatalError(Exception):
    """Retrying cannot help (401, 404)."""


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


class SseReaderActor(SupervisedActor):
    """Reads the server's event stream for one directory and fans batches out."""

    def __init__(
        self,
        *,
        client: OpencodeClient,
        subscribers: Sequence[Callable[[EventsReceived], None]],
        publish: Callable[[Any], None],
        policy: ReconnectPolicy = ReconnectPolicy(),
        clock: Callable[[], float] = time.monotonic,
        tick: float | None = 1.0,
        report: Report | None = None,
    ) -> None:
        super().__init__(report=report)
        self._client = client
        self._subscribers = tuple(subscribers)
        self._publish = publish
        self._policy = policy
        self._clock = clock
        self._tick = tick
        self._stopping = threading.Event()
        self._connection = 0
        self._response: requests.Response | None = None
        self._last_bytes = clock()
        self._shut_why: str | None = None

    def on_start(self) -> None:
        """Start the reader thread (and the watchdog's ticker)."""
        start_thread("sse-reader", self._run)
        if self._tick is not None:
            start_ticker(self.actor_ref, _Tick(), self._tick, self._stopping)

    def on_receive(self, message: Any) -> None:
        """Watchdog ticks."""
        match message:
            case _Tick():
                self.check_watchdog()
            case _:
                logger.warning("SseReaderActor ignored unexpected message {!r}", message)

    def on_stop(self) -> None:
        """End the reader thread at once by shutting its socket."""
        self._stopping.set()
        self._shut("stopping")
        super().on_stop()

    def check_watchdog(self) -> bool:
        """Shut a connection that sent no bytes for three heartbeats; True if it did."""
        silent = self._clock() - self._last_bytes
        if self._response is None or silent < 3 * self._policy.heartbeat:
            return False
        logger.debug("sse watchdog: no bytes for {:.1f}s", silent)
        self._shut(f"watchdog: no bytes for {silent:.0f}s")
        return True

    # -- the reader thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._retrying()(self._read_once)
            except _BrokenError as exc:  # a healthy connection broke: fresh budget
                self._dropped(str(exc), 0.0)
            except (_FatalError, tenacity.RetryError) as exc:
                if not self._stopping.is_set():
                    self._publish(StreamFailed(reason=_reason(exc)))
                return
            except Exception as exc:
                logger.exception("sse reader crashed")
                self._publish(StreamFailed(reason=f"event stream reader crashed: {exc}"))
                return

    def _retrying(self) -> tenacity.Retrying:
        policy = self._policy
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(_retry_this),
            wait=tenacity.wait_random_exponential(multiplier=policy.initial, max=policy.maximum),
            stop=self._budget_spent,
            sleep=self._stopping.wait,
            before_sleep=lambda state: self._dropped(
                _reason(state.outcome.exception()), state.upcoming_sleep
            ),
        )

    def _budget_spent(self, state: tenacity.RetryCallState) -> bool:
        """Too many failed tries, or nothing received for `outage` seconds (time the stream
        was up does not count against it)."""
        silent = self._clock() - self._last_bytes
        return state.attempt_number >= self._policy.attempts or silent >= self._policy.outage

    def _read_once(self) -> None:
        if self._stopping.is_set():
            return
        connection = self._connection + 1  # counts streams that said `server.connected`
        response = self._open()
        decoder = SseDecoder()
        connected_at = None
        try:
            for chunk in _chunks(response):
                self._last_bytes = self._clock()
                events = _decode(decoder.feed(chunk))
                if connected_at is None and _has_connected(events):
                    connected_at = self._clock()
                    self._connection = connection
                    self._publish(StreamConnected(connection=connection))
                if events:
                    self._fan_out(EventsReceived(events=events, connection=connection))
            decoder.close()
            reason = "truncated frame at end of stream" if decoder.truncated else "end of stream"
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            reason = f"connection lost ({type(exc).__name__})"
        finally:
            self._response = None
            response.close()
        if self._shut_why is not None:
            reason, self._shut_why = self._shut_why, None
        if self._stopping.is_set():
            return
        healthy = connected_at is not None and (
            self._clock() - connected_at >= self._policy.healthy_after
        )
        raise _BrokenError(reason, healthy=healthy)

    def _open(self) -> requests.Response:
        policy = self._policy
        try:
            response = self._client.http.get(
                self._client.url("/event"),
                params=self._client.scope_params(),
                stream=True,
                headers={"Accept": "text/event-stream"},
                timeout=(policy.connect_timeout, 3 * policy.heartbeat + 5),
            )
        except requests.RequestException as exc:
            raise _BrokenError(f"cannot connect ({type(exc).__name__})", healthy=False) from exc
        if response.status_code in (401, 404):
            response.close()
            raise _FatalError(f"GET /event -> HTTP {response.status_code}")
        if not response.ok:
            response.close()
            raise _BrokenError(f"GET /event -> HTTP {response.status_code}", healthy=False)
        self._last_bytes = self._clock()
        self._response = response
        if self._stopping.is_set():
            self._shut("stopping")
        return response

    def _fan_out(self, batch: EventsReceived) -> None:
        for subscriber in self._subscribers:
            with contextlib.suppress(pykka.ActorDeadError):
                subscriber(batch)

    def _dropped(self, reason: str, retry_in: float) -> None:
        if not self._stopping.is_set():
            self._publish(
                StreamDropped(connection=self._connection, reason=reason, retry_in=retry_in)
            )

    def _shut(self, why: str) -> None:
        self._shut_why = why
        response = self._response
        sock = _socket_of(response) if response is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            logger.debug("sse socket shut ({})", why)


def _chunks(response: requests.Response) -> Iterator[bytes]:
    """Bytes as soon as they arrive, chunked or not (`iter_content` would wait for the end of
    a response that is not chunked)."""
    raw = response.raw
    while chunk := raw.read1(65536):
        yield chunk


def _retry_this(exc: BaseException) -> bool:
    return isinstance(exc, _BrokenError) and not exc.healthy


def _reason(exc: BaseException | None) -> str:
    if isinstance(exc, tenacity.RetryError):
        last = exc.last_attempt.exception()
        return f"event stream lost and not recovered after retries: {last}"
    return str(exc)


def _decode(frames: list[Any]) -> tuple[dict[str, Any], ...]:
    events = []
    for frame in frames:
        try:
            event = json.loads(frame.data)
        except ValueError:
            logger.warning("sse: dropped a frame that is not JSON: {!r}", frame.data[:200])
            continue
        if isinstance(event, dict):
            events.append(event)
    return tuple(events)


def _has_connected(events: tuple[dict[str, Any], ...]) -> bool:
    return any(event.get("type") == "server.connected" for event in events)


def _socket_of(response: requests.Response) -> socket.socket | None:
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
