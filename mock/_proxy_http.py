"""HTTP plumbing for `FaultProxy`: read a request, forward it upstream, relay the answer.

Each accepted connection carries one request (`Connection: close` both ways, so one connection
is one exchange). Plain answers are read whole and sent with `Content-Length`. Answers with
`Content-Type: text/event-stream` are relayed chunk by chunk as they arrive, re-framed with
chunked encoding; between reading a chunk and sending it the handler asks the proxy whether to
hold it (stall), cut the stream after some frames, or give up (dropped or stopping). A cut or
a drop closes the client socket without the final zero-length chunk, so the client sees the
body end prematurely, as on a broken connection; a clean upstream end sends it.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import struct
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from mock._proxy_sse import FrameCounter, HeartbeatsOnly

READ_SIZE = 65536
# Per-connection headers a proxy must not forward (RFC 9110 §7.6.1), plus those it recomputes.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",
    }
)
_ERRORS = (OSError, ValueError, http.client.HTTPException)


class Exchange:
    """One connection in flight: its sockets, so another thread can abort it at once."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: socket.socket | None = None
        self.aborted = threading.Event()
        self.events = 0  # complete SSE frames relayed on this exchange
        self.cut_order = 0  # which `cut_after` order `cut_left` belongs to
        self.cut_left = 0
        self.muted = False  # `FaultProxy.mute_streams`: heartbeats only from now on

    def attach(self, upstream: socket.socket) -> None:
        """Remember the upstream socket; shut it at once if the exchange was already aborted."""
        self.upstream = upstream
        if self.aborted.is_set():
            _shut(upstream)

    def abort(self) -> None:
        """Shut both sockets: blocked reads and writes on either side return or raise."""
        self.aborted.set()
        _shut(self.client)
        if self.upstream is not None:
            _shut(self.upstream)


def _reset(sock: socket.socket) -> None:
    """Linger 0: closing the socket sends RST, the client sees a reset."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class Gate(Protocol):
    """What the plumbing asks of the faults before and while it relays (`FaultProxy` is one):
    each call answers for one connection or stream, under the proxy's lock."""

    def admit(self) -> bool:
        """Serve this connection (False: inside a refusal window, reset it)."""

    def admit_stream(self) -> bool:
        """Open this event stream (False: streams are refused, reset it)."""

    def swallow(self, path: str) -> bool:
        """Accept this POST with 204 and never forward it (a prompt that is lost)."""

    def register(self, exchange: Exchange) -> None:
        """An exchange starts (it is aborted at once if the proxy is stopping)."""

    def unregister(self, exchange: Exchange) -> None:
        """An exchange ended."""

    def stream_opened(self, exchange: Exchange) -> None:
        """An exchange turned out to be an event stream."""

    def await_flow(self, exchange: Exchange) -> bool:
        """Wait out a stall; False when the stream was dropped or the proxy is stopping."""

    def cut_plan(self, exchange: Exchange, frames: int) -> int | None:
        """How many of `frames` to send before cutting, or None to send them all."""

    def count(self, exchange: Exchange, frames: int) -> None:
        """`frames` complete events were relayed on `exchange`."""


class ProxyServer(ThreadingHTTPServer):
    """A threading HTTP server that asks its `Gate` before serving a connection."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], proxy: Gate, upstream: tuple[str, int]):
        self.proxy = proxy
        self.upstream = upstream
        super().__init__(address, ProxyHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A peer that went away (killed server, cut stream) is normal here, not a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def verify_request(self, request: Any, _client_address: Any) -> bool:
        """Refuse inside a `refuse_for` window: reset the connection without a response."""
        if self.proxy.admit():
            return True
        _reset(request)
        return False


class ProxyHandler(BaseHTTPRequestHandler):
    """Forwards one request upstream and relays the response (SSE incrementally)."""

    protocol_version = "HTTP/1.1"
    server: ProxyServer

    def log_message(self, *_: object) -> None:
        """Log nothing: request lines and headers may carry secrets."""

    def forward(self) -> None:
        """Handle any method: forward, relay, and always close the connection afterwards."""
        self.close_connection = True
        proxy = self.server.proxy
        # /global/event: opencode 1.14; /api/event: opencode 2.x
        stream = self.path.startswith(("/event", "/global/event", "/api/event"))
        if stream and not proxy.admit_stream():
            _reset(self.connection)
            return
        if self.command == "POST" and proxy.swallow(self.path):
            self._read_body()  # accepted, and never forwarded: a prompt that is lost
            self.send_response(204)
            self.send_header("Connection", "close")
            self.end_headers()
            return
        exchange = Exchange(self.connection)
        proxy.register(exchange)
        try:
            self._exchange(exchange)
        except _ERRORS:
            exchange.abort()  # either side broke: end the exchange without a clean close
        finally:
            proxy.unregister(exchange)

    def _exchange(self, exchange: Exchange) -> None:
        conn = http.client.HTTPConnection(*self.server.upstream)
        response: http.client.HTTPResponse | None = None
        try:
            response = self._ask_upstream(conn, exchange)
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in _NOT_FORWARDED:
                    self.send_header(name, value)
            self.send_header("Connection", "close")
            if response.getheader("Content-Type", "").startswith("text/event-stream"):
                self._relay_stream(response, exchange)
            else:
                self._relay_whole(response)
        finally:
            if response is not None:
                response.close()
            conn.close()

    def _ask_upstream(
        self, conn: http.client.HTTPConnection, exchange: Exchange
    ) -> http.client.HTTPResponse:
        body = self._read_body()
        conn.connect()  # refused upstream: OSError, and the client sees its connection close
        if conn.sock is not None:
            exchange.attach(conn.sock)
        conn.putrequest(self.command, self.path, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in _NOT_FORWARDED:
                conn.putheader(name, value)
        if body or self.command in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        return conn.getresponse()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked_body(self) -> bytes:
        parts: list[bytes] = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after the chunk data
        while self.rfile.readline().strip():  # trailer fields up to the blank line
            pass
        return b"".join(parts)

    def _relay_whole(self, response: http.client.HTTPResponse) -> None:
        data = response.read()
        if self.command == "HEAD":
            length = response.getheader("Content-Length")
            if length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _relay_stream(self, response: http.client.HTTPResponse, exchange: Exchange) -> None:
        proxy = self.server.proxy
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        proxy.stream_opened(exchange)
        counter = FrameCounter()
        only = None
        while chunk := response.read1(READ_SIZE):
            inside, ends = counter.inside, counter.feed(chunk)
            if not proxy.await_flow(exchange):  # dropped or stopping
                return
            if exchange.muted:
                only = only or HeartbeatsOnly(inside)
                self._send_chunk(only.feed(chunk, ends))
                continue
            keep = proxy.cut_plan(exchange, len(ends))
            if keep is not None:
                self._send_chunk(chunk[: ends[keep - 1]] if keep else b"")
                proxy.count(exchange, keep)
                exchange.abort()
                return
            self._send_chunk(chunk)
            proxy.count(exchange, len(ends))
        if not exchange.aborted.is_set():
            self.wfile.write(b"0\r\n\r\n")

    def _send_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


# BaseHTTPRequestHandler dispatches on `do_<METHOD>`: every method takes the same path.
for _method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
    setattr(ProxyHandler, f"do_{_method}", ProxyHandler.forward)


def is_loopback_ip(host: str, *, version: int | None = None) -> bool:
    """True for a loopback IP address (of `version`, if given)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback and version in (None, address.version)


def parse_upstream(url: str) -> tuple[str, int]:
    """`(host, port)` of an `http://` loopback URL without a path; ValueError otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ValueError(f"upstream must look like http://127.0.0.1:PORT, got {url!r}")
    if not (is_loopback_ip(parts.hostname) or parts.hostname == "localhost"):
        raise ValueError(f"upstream must be on loopback, got host {parts.hostname!r}")
    if parts.path not in ("", "/"):
        raise ValueError(f"upstream must have no path, got {url!r}")
    return parts.hostname, parts.port
