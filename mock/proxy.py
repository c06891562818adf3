"""A loopback HTTP proxy that injects faults into the opencode server's SSE stream on command.

Theory of operation. `FaultProxy` listens on 127.0.0.1 and serves each connection in a daemon
thread (`mock._proxy_http`): the request is forwarded verbatim (method, path and query,
headers including Authorization, body) to the upstream server, and the response is relayed
with `Connection: close`. Event streams (`Content-Type: text/event-stream`, i.e. `GET /event`)
are relayed as bytes arrive: the handler reads whatever the upstream has (`read1`), finds the
SSE frame boundaries in it (`mock._proxy_sse`), and before sending asks this object, under one
condition variable, what to do:

- `stall()`: hold the chunk and read no more upstream until `release()`; nothing is lost, the
  held bytes follow on release. The client sees an open connection that goes silent.
- `cut_after(n)`: one order, shared by the open streams and the next ones; the first stream to
  relay `n` more complete frames sends exactly those, then both its sockets are shut. The
  client sees `n` whole events, then the body ends without the final chunk (EOF mid-body).
- `cut_every(n)`: from now on every stream (open and new) is cut after relaying `n` complete
  frames of its own, until `cut_every(None)`: a stream that keeps flapping.
- `drop_streams()`: shut every open stream's sockets now (same client view as a cut).
- `mute_streams()`: every open stream relays only heartbeats from now on (alive, silent); new
  streams are not muted. `swallow_prompts(n)`: the next `n` prompts are answered 204 and lost.
- `refuse_for(seconds)`: until `clock()` passes the deadline, accepted connections are reset
  (RST, no response): the client sees a connection error, never an HTTP status.
  `refuse_streams_for(seconds)` does the same to event stream requests only (the request is
  read, then the connection reset), so plain requests (prompts, resyncs) still get through.

Plain requests are never faulted, but for swallowed prompts. Counters are kept under the same
condition (`mock._proxy_counts`), so tests wait on them (`wait_for_streams`, `wait_for_events`,
`wait_for_refusals`) instead of sleeping.
`stop()` shuts every socket in flight and returns promptly, stalls included.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mock._proxy_counts import Counters
from mock._proxy_http import Exchange, ProxyServer, is_loopback_ip, parse_upstream

__all__ = ["FaultProxy"]

_EVERY = -1  # the `cut_order` of a stream that follows `cut_every`
_POLL_INTERVAL = 0.05  # how often the accept loop checks for shutdown: bounds stop() latency


class FaultProxy(Counters):
    """A fault-injecting HTTP proxy on 127.0.0.1 in front of one upstream server."""

    def __init__(
        self,
        upstream: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not is_loopback_ip(host, version=4):
            raise ValueError(f"FaultProxy binds loopback only; got host {host!r}")
        self._upstream = parse_upstream(upstream)
        self._address = (host, port)
        self._clock = clock
        self._cond = threading.Condition()
        self._server: ProxyServer | None = None
        self._thread: threading.Thread | None = None
        self._exchanges: set[Exchange] = set()
        self._streams: set[Exchange] = set()
        self._stopping = False
        self._stalled = False
        self._cut_n: int | None = None
        self._cut_every: int | None = None
        self._cut_order = 0
        self._refuse_until = float("-inf")
        self._refuse_streams_until = float("-inf")
        self._events = 0
        self._streams_opened = 0
        self._refused = 0
        self._swallowed: list[str] = []  # paths of the prompts answered and dropped
        self._to_swallow = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Bind the listening socket and start serving; returns self."""
        if self._server is not None:
            raise RuntimeError("FaultProxy already started")
        self._server = ProxyServer(self._address, self, self._upstream)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"fault-proxy-{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut every connection in flight, stop accepting, and close the listening socket."""
        with self._cond:
            self._stopping = True
            exchanges = list(self._exchanges)
            self._cond.notify_all()
        for exchange in exchanges:
            exchange.abort()
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=2)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL of the proxy, e.g. `http://127.0.0.1:54321`."""
        if self._server is None:
            raise RuntimeError("FaultProxy not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- faults ------------------------------------------------------------------------------

    def cut_after(self, n_events: int) -> None:
        """Cut the first event stream (open or next) that relays `n_events` more events."""
        if n_events < 0:
            raise ValueError(f"cut_after needs n_events >= 0, got {n_events}")
        with self._cond:
            self._cut_n = n_events
            self._cut_order += 1

    def cut_every(self, n_events: int | None) -> None:
        """Cut every stream after `n_events` frames of its own, until called with None."""
        if n_events is not None and n_events < 1:
            raise ValueError(f"cut_every needs n_events >= 1, got {n_events}")
        with self._cond:
            self._cut_every = n_events

    def stall(self) -> None:
        """Hold every event stream, open and new, silent until `release()`."""
        with self._cond:
            self._stalled = True

    def release(self) -> None:
        """End a stall: held streams resume where they stopped, nothing lost."""
        with self._cond:
            self._stalled = False
            self._cond.notify_all()

    def refuse_for(self, seconds: float) -> None:
        """Reset new connections without a response until `seconds` pass on the clock."""
        with self._cond:
            self._refuse_until = self._clock() + seconds

    def refuse_streams_for(self, seconds: float) -> None:
        """Reset event stream requests (only) until `seconds` pass on the clock."""
        with self._cond:
            self._refuse_streams_until = self._clock() + seconds

    def drop_streams(self) -> int:
        """Close every open event stream now; returns how many were closed."""
        with self._cond:
            streams = list(self._streams)
            for stream in streams:
                stream.abort()
            self._cond.notify_all()
        return len(streams)

    def mute_streams(self) -> int:
        """Let every open stream pass heartbeats only from now on; returns how many."""
        with self._cond:
            for stream in self._streams:
                stream.muted = True
            return len(self._streams)

    def swallow_prompts(self, n: int) -> None:
        """Answer the next `n` `prompt_async` POSTs with 204 and drop them (opencode #46792)."""
        with self._cond:
            self._to_swallow = n

    @property
    def swallowed(self) -> tuple[str, ...]:
        """Paths of the prompts swallowed so far."""
        with self._cond:
            return tuple(self._swallowed)

    # -- the `Gate` the handler threads ask (mock._proxy_http) -------------------------------

    def admit(self) -> bool:
        with self._cond:
            if self._clock() < self._refuse_until:
                self._refused += 1
                self._cond.notify_all()
                return False
            return True

    def swallow(self, path: str) -> bool:
        with self._cond:
            route = path.split("?", maxsplit=1)[0]
            prompt = route.endswith("/prompt_async") or (  # opencode 2.x: /api/.../prompt
                route.startswith("/api/session/") and route.endswith("/prompt")
            )
            if self._to_swallow <= 0 or not prompt:
                return False
            self._to_swallow -= 1
            self._swallowed.append(path)
            return True

    def admit_stream(self) -> bool:
        with self._cond:
            if self._clock() < self._refuse_streams_until:
                self._refused += 1
                self._cond.notify_all()
                return False
            return True

    def register(self, exchange: Exchange) -> None:
        with self._cond:
            self._exchanges.add(exchange)
            stopping = self._stopping
        if stopping:
            exchange.abort()

    def unregister(self, exchange: Exchange) -> None:
        with self._cond:
            self._exchanges.discard(exchange)
            self._streams.discard(exchange)

    def stream_opened(self, exchange: Exchange) -> None:
        with self._cond:
            self._streams.add(exchange)
            self._streams_opened += 1
            self._cond.notify_all()

    def await_flow(self, exchange: Exchange) -> bool:
        """Wait out a stall; False when the stream was dropped or the proxy is stopping."""
        with self._cond:
            self._cond.wait_for(
                lambda: not self._stalled or exchange.aborted.is_set() or self._stopping
            )
            return not (exchange.aborted.is_set() or self._stopping)

    def cut_plan(self, exchange: Exchange, frames: int) -> int | None:
        """How many of `frames` to send before cutting, or None to send them all."""
        with self._cond:
            if self._cut_every is not None:
                if exchange.cut_order != _EVERY:
                    exchange.cut_order = _EVERY
                    exchange.cut_left = self._cut_every
                if frames < exchange.cut_left:
                    exchange.cut_left -= frames
                    return None
                return exchange.cut_left
            if self._cut_n is None:
                return None
            if exchange.cut_order != self._cut_order:
                exchange.cut_order = self._cut_order
                exchange.cut_left = self._cut_n
            if frames < exchange.cut_left:
                exchange.cut_left -= frames
                return None
            self._cut_n = None
            return exchange.cut_left

    def count(self, exchange: Exchange, frames: int) -> None:
        with self._cond:
            exchange.events += frames
            self._events += frames
            self._cond.notify_all()
