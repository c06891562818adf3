"""SseReaderActor: owns the `GET /event` connection and keeps it alive.

Theory of operation. A daemon reader thread connects (requests, `stream=True`), feeds each read
to the pure `SseDecoder`, masks the server's password (`core.redact`), `json.loads` the frames
and hands the events of one read to the subscribers as ONE `EventsReceived` batch weighing the
bytes read (the hot path; subscribers never block). `server.connected` is `StreamConnected`
(never mere headers); once anything follows it (an event, or bytes the decoder made no event
of, such as opencode 2.x's heartbeat comments), the connection is *working*.
A break (EOF, a truncated frame, a network error, the watchdog, a refusal) is `StreamDropped`,
then a reconnect after tenacity's jittered exponential backoff. The budget is an *outage*: time
without a working connection, from the break of the last one (or the start). A working
connection that breaks starts a fresh outage and the backoff from `initial`: a stream cut every
few events is reconnected forever, one that never gets past `server.connected` is
`StreamFailed` after `outage` seconds; 401 and 404 at once. The backoff waits on the stop
event. The watchdog runs in the actor on a tick against an injected clock: no bytes for three
heartbeats and it shuts the socket, a break for the thread; `on_stop` shuts it too.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pykka
import requests
import tenacity
import urllib3

from actors._sse_io import body_reader, decode, socket_of
from actors._supervised import Report, SupervisedActor
from actors.logs import logger
from actors.opencode_client import OpencodeClient
from actors.process import start_thread
from actors.worker import start_ticker
from core.chunked import ChunkedError
from core.redact import StreamRedactor
from core.sse import SseDecoder
from messages.stream import (
    EventsReceived,
    Reconnect,
    StreamConnected,
    StreamDropped,
    StreamFailed,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconnectPolicy:
    """How hard the reader tries to get the stream back."""

    outage: float = 60.0  # give up after this long without a working connection
    initial: float = 0.25  # backoff window of the first retry of an outage
    maximum: float = 8.0  # the widest backoff window
    heartbeat: float | None = 10.0  # None: the server sends none (opencode 1.14)
    connect_timeout: float = 5.0

    @property
    def quiet(self) -> float:
        """How long a connection may send no bytes before it is shut: three heartbeats, or,
        from a server without heartbeats, five minutes (its streams are quiet when idle)."""
        return 3 * self.heartbeat if self.heartbeat else 300.0


class _BrokenError(Exception):
    """The connection broke, or could not be made; retry."""

    def __init__(self, reason: str, *, working: bool = False) -> None:
        super().__init__(reason)
        self.working = working


class _FatalError(Exception):
    """Retrying cannot help (401, 404)."""


@dataclass(slots=True)
class _Connection:
    """What the reader thread knows of the connection it is reading."""

    number: int
    connected: bool = False
    working: bool = False
    unsent: int = 0  # bytes read since the last batch went out


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


_CONNECTED = "server.connected"
_WATCHDOG = "watchdog:"
# tenacity's wait strategies read the attempt number off a call state tied to a Retrying.
_RETRYING = tenacity.Retrying()


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
        secrets: tuple[str, ...] = (),
    ) -> None:
        super().__init__(report=report)
        self._client = client
        self._subscribers = tuple(subscribers)
        self._publish = publish
        self._policy = policy
        self._clock = clock
        self._tick = tick
        self._redactor = StreamRedactor(secrets) if any(secrets) else None
        self._stream = client.wire.events()  # the route is the protocol's (core.protocol)
        scope = client.scope_params() if self._stream.scoped else {}
        self._stream_params = {**scope, **self._stream.params}
        self._model = client.wire.event_decoder(client.directory)  # into the runner's events
        self._backoff = tenacity.wait_random_exponential(
            multiplier=policy.initial, max=policy.maximum
        )
        self._stopping = threading.Event()
        self._connection = 0
        self._response: requests.Response | None = None
        self._last_bytes = self._outage_from = clock()  # the thread alone touches the outage
        self._shut_why: str | None = None
        self._failures = 0

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
            case Reconnect(reason=reason):
                logger.info("sse: reopening the stream: {}", reason)
                self._shut(reason)
            case _:
                logger.warning("SseReaderActor ignored unexpected message {!r}", message)

    def on_stop(self) -> None:
        """End the reader thread at once by shutting its socket."""
        self._stopping.set()
        self._shut("stopping")
        super().on_stop()

    def check_watchdog(self) -> bool:
        """Shut a connection that sent no bytes for `policy.quiet`; True if it did."""
        silent = self._clock() - self._last_bytes
        if self._response is None or silent < self._policy.quiet:
            return False
        logger.debug("sse watchdog: no bytes for {:.1f}s", silent)
        self._shut(f"{_WATCHDOG} no bytes for {silent:.0f}s")
        return True

    # -- the reader thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._read_once()
            except _BrokenError as exc:
                if not self._wait_after(exc):
                    return
            except _FatalError as exc:
                self._say(StreamFailed(reason=str(exc)))
                return
            except Exception as exc:
                logger.exception("sse reader crashed")
                self._say(StreamFailed(reason=f"event stream reader crashed: {exc}"))
                return

    def _wait_after(self, exc: _BrokenError) -> bool:
        """Count a break against the outage and sleep the backoff; False once it is spent."""
        now = self._clock()
        if exc.working:  # a fresh outage: the budget and the backoff start again
            self._outage_from = now
            self._failures = 0
        left = self._policy.outage - (now - self._outage_from)
        if left <= 0:
            outage = f"no working connection for {self._policy.outage:g}s"
            self._say(StreamFailed(reason=f"event stream lost: {outage} (last: {exc})"))
            return False
        self._failures += 1
        state = tenacity.RetryCallState(_RETRYING, fn=None, args=(), kwargs={})
        state.attempt_number = self._failures
        delay = min(self._backoff(state), left)  # one last try when the budget runs out
        self._say(StreamDropped(connection=self._connection, reason=str(exc), retry_in=delay))
        self._stopping.wait(delay)
        return True

    def _read_once(self) -> None:
        """Read one connection until it breaks (`_BrokenError`) or the reader stops."""
        response = self._open()
        decoder, conn = SseDecoder(), _Connection(self._connection + 1)
        read = body_reader(response)
        try:
            while chunk := read():
                self._last_bytes = self._clock()
                conn.unsent += len(chunk)
                events, texts = decode(decoder.feed(chunk), self._redactor, self._model)
                if events:
                    self._deliver(events, texts, conn)
                elif conn.connected:  # a heartbeat comment (opencode 2.x), or what the
                    conn.working = True  # wire's decoder kept none of: the stream delivers
            decoder.close()
            reason = "truncated frame at end of stream" if decoder.truncated else "end of stream"
        except (
            requests.RequestException,
            urllib3.exceptions.HTTPError,
            OSError,
            ChunkedError,
        ) as exc:
            reason = f"connection lost ({type(exc).__name__})"
        finally:
            self._response = None
            response.close()
        if not self._stopping.is_set():
            raise self._broken(reason, conn)

    def _broken(self, reason: str, conn: _Connection) -> _BrokenError:
        """A connection's end, named by whoever shut it, and whether it had worked."""
        working = conn.working
        if self._shut_why is not None:
            reason, self._shut_why = self._shut_why, None
            # Without heartbeats (opencode 1.14) a connection is quiet while nothing happens: one
            # that stayed up until the watchdog shut it worked.
            quiet = conn.connected and not self._policy.heartbeat
            working |= quiet and reason.startswith(_WATCHDOG)
        return _BrokenError(reason, working=working)

    def _deliver(self, events: tuple[dict[str, Any], ...], texts: tuple[str, ...], conn) -> None:
        """Fan one read's events out as one batch, weighing the bytes read for it."""
        if not conn.working:
            self._progress(events, conn)
        batch = EventsReceived(events=events, texts=texts, connection=conn.number, size=conn.unsent)
        conn.unsent = 0
        for subscriber in self._subscribers:
            with contextlib.suppress(pykka.ActorDeadError):
                subscriber(batch)

    def _progress(self, events: tuple[dict[str, Any], ...], conn: _Connection) -> None:
        """`server.connected` is StreamConnected; any event after it makes the connection work."""
        if not conn.connected:
            at = next((i for i, e in enumerate(events) if e.get("type") == _CONNECTED), None)
            if at is None:
                return
            conn.connected, self._connection = True, conn.number
            self._publish(StreamConnected(connection=conn.number))
            events = events[at + 1 :]
        conn.working = bool(events)

    def _open(self) -> requests.Response:
        policy = self._policy
        try:
            response = self._client.http.get(
                self._client.url(self._stream.path),
                params=self._stream_params,
                stream=True,
                headers={"Accept": "text/event-stream"},
                timeout=(policy.connect_timeout, policy.quiet + 5),
            )
        except requests.RequestException as exc:
            raise _BrokenError(f"cannot connect ({type(exc).__name__})") from exc
        if response.status_code in (401, 404):
            response.close()
            raise _FatalError(f"GET /event -> HTTP {response.status_code}")
        if not response.ok:
            response.close()
            raise _BrokenError(f"GET /event -> HTTP {response.status_code}")
        self._last_bytes = self._clock()
        self._response = response
        if self._stopping.is_set():
            self._shut("stopping")
        return response

    def _say(self, message: StreamDropped | StreamFailed) -> None:
        if not self._stopping.is_set():  # a stop is no news
            self._publish(message)

    def _shut(self, why: str) -> None:
        self._shut_why = why
        response = self._response
        if response is None:  # it had just ended: leave no reason for the next connection
            self._shut_why = None
            return
        sock = socket_of(response)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            logger.debug("sse socket shut ({})", why)
