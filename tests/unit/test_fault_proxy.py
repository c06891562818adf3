"""FaultProxy: passthrough, incremental SSE relay, and each fault as the client sees it."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from mock._proxy_sse import FrameCounter, HeartbeatsOnly
from mock.proxy import FaultProxy

pytestmark = pytest.mark.timeout(30)

AUTH = "Basic b3BlbmNvZGU6c2VjcmV0"  # opencode:secret
WAIT = 5.0  # bound on every wait for something that should happen
SILENCE = 0.3  # how long a read must stay empty to count as "nothing relayed"


# -- a fake upstream standing in for `opencode serve` ------------------------------------------


class FakeStream:
    """One upstream `/event` stream; the test pushes what it writes, and sees when it wrote."""

    def __init__(self) -> None:
        self.feed: queue.Queue[list[int] | bytes | None] = queue.Queue()
        self.written: queue.Queue[object] = queue.Queue()

    def send(self, *numbers: int) -> None:
        """Write `data: {"n": i}` frames for all `numbers` in one chunk."""
        self.feed.put(list(numbers))

    def send_raw(self, data: bytes) -> None:
        """Write these exact bytes as one chunk."""
        self.feed.put(data)

    def end(self) -> None:
        """End the stream cleanly."""
        self.feed.put(None)

    def wait_written(self) -> None:
        """Wait until the upstream has written the oldest pending push to its socket."""
        self.written.get(timeout=WAIT)


class _UpstreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _UpstreamServer

    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        self._record(b"")
        if self.path.startswith("/event"):
            self._stream()
        elif self.path.startswith("/json"):
            self._reply(200, {"ok": True, "path": self.path}, extra={"X-Upstream": "yes"})
        elif self.path == "/private" and self.headers.get("Authorization") != AUTH:
            self._reply(401, {"error": "unauthorized"}, extra={"WWW-Authenticate": "Basic"})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._record(body)
        self._reply(201, json.loads(body), extra={"X-Echo-Path": self.path})

    def _read_chunked(self) -> bytes:
        parts = []
        while size := int(self.rfile.readline().strip(), 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(parts)

    def _record(self, body: bytes) -> None:
        seen = {"method": self.command, "path": self.path, "headers": self.headers, "body": body}
        self.server.requests.put(seen)

    def _reply(self, status: int, payload: Any, *, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self) -> None:
        stream = FakeStream()
        self.server.streams.put(stream)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while (item := stream.feed.get(timeout=30)) is not None:
                data = item if isinstance(item, bytes) else _frames(item)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                stream.written.put(item)
            self.wfile.write(b"0\r\n\r\n")
        except (OSError, queue.Empty):
            self.close_connection = True


def _frames(numbers: list[int]) -> bytes:
    return b"".join(b'data: {"n": %d}\n\n' % n for n in numbers)


class _UpstreamServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _UpstreamHandler)
        self.requests: queue.Queue[dict[str, Any]] = queue.Queue()
        self.streams: queue.Queue[FakeStream] = queue.Queue()


class FakeUpstream:
    """A tiny loopback server: `/json`, `/private` (401), POST echo, test-driven `/event`."""

    def __init__(self) -> None:
        self.server = _UpstreamServer()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._opened: list[FakeStream] = []
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def next_stream(self) -> FakeStream:
        """The next `/event` stream a client opened through the proxy."""
        stream = self.server.streams.get(timeout=WAIT)
        self._opened.append(stream)
        return stream

    def next_request(self) -> dict[str, Any]:
        """The next request the upstream received."""
        return self.server.requests.get(timeout=WAIT)

    def close(self) -> None:
        """End every stream and stop serving."""
        for stream in self._opened:
            stream.end()
        self.server.shutdown()
        self.server.server_close()


# -- a raw-socket SSE client: timeouts never corrupt its state ---------------------------------


class SseClient:
    """Opens `GET /event` on a raw socket and decodes chunked SSE frames itself."""

    def __init__(self, base_url: str, path: str = "/event?directory=%2Ftmp%2Fproj") -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=WAIT)
        request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: {AUTH}\r\n\r\n"
        self.sock.sendall(request.encode())
        self._raw = b""
        self._body = b""
        self.finished = False  # the final zero-length chunk arrived: a clean end
        self.eof = False
        deadline = time.monotonic() + WAIT
        while b"\r\n\r\n" not in self._raw:
            assert self._recv(deadline), "connection closed before the response head"
        head, self._raw = self._raw.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode().split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}

    def next_event(self, timeout: float = WAIT) -> dict[str, Any] | None:
        """The next event's JSON, or None at the end of the body; TimeoutError if silent."""
        deadline = time.monotonic() + timeout
        while True:
            self._dechunk()
            if b"\n\n" in self._body:
                frame, self._body = self._body.split(b"\n\n", 1)
                return json.loads(frame.removeprefix(b"data: "))
            if self.finished or not self._recv(deadline):
                return None

    def numbers(self, count: int) -> list[int]:
        """The `n` of the next `count` events."""
        return [self._number() for _ in range(count)]

    def _number(self) -> int:
        event = self.next_event()
        assert event is not None, "stream ended early"
        return event["n"]

    def _recv(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("nothing arrived")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        self.eof = not data
        self._raw += data
        return bool(data)

    def _dechunk(self) -> None:
        while not self.finished and (line_end := self._raw.find(b"\r\n")) >= 0:
            size = int(self._raw[:line_end], 16)
            if size == 0:
                self.finished = True
                return
            start = line_end + 2
            if len(self._raw) < start + size + 2:
                return
            self._body += self._raw[start : start + size]
            self._raw = self._raw[start + size + 2 :]


class FakeClock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def upstream():
    fake = FakeUpstream()
    yield fake
    fake.close()


@pytest.fixture
def proxy(upstream):
    with FaultProxy(upstream.url) as running:
        yield running


@pytest.fixture
def connect(proxy):
    clients: list[SseClient] = []

    def _connect() -> SseClient:
        clients.append(SseClient(proxy.url))
        return clients[-1]

    yield _connect
    for client in clients:
        client.sock.close()


# -- passthrough ---------------------------------------------------------------------------


def test_get_passes_path_query_and_authorization_through(proxy, upstream):
    response = requests.get(
        f"{proxy.url}/json?directory=%2Ftmp", headers={"Authorization": AUTH}, timeout=WAIT
    )
    assert response.status_code == 200
    assert response.json() == {"ok": True, "path": "/json?directory=%2Ftmp"}
    assert response.headers["X-Upstream"] == "yes"
    seen = upstream.next_request()
    assert seen["headers"]["Authorization"] == AUTH
    assert seen["path"] == "/json?directory=%2Ftmp"


def test_post_body_and_status_are_relayed(proxy, upstream):
    body = {"parts": [{"type": "text", "text": "héllo"}]}
    response = requests.post(f"{proxy.url}/session/s1/message", json=body, timeout=WAIT)
    assert response.status_code == 201
    assert response.json() == body
    assert response.headers["X-Echo-Path"] == "/session/s1/message"
    seen = upstream.next_request()
    assert seen["method"] == "POST"
    assert seen["headers"]["Content-Type"] == "application/json"
    assert json.loads(seen["body"]) == body


def test_chunked_request_body_is_forwarded_whole(proxy):
    pieces = (b'{"a": ', b"[1, 2]", b"}")
    response = requests.post(f"{proxy.url}/echo", data=iter(pieces), timeout=WAIT)
    assert response.json() == {"a": [1, 2]}


@pytest.mark.parametrize(("path", "status"), [("/private", 401), ("/missing", 404)])
def test_error_statuses_are_relayed(proxy, path, status):
    response = requests.get(f"{proxy.url}{path}", timeout=WAIT)
    assert response.status_code == status
    assert "error" in response.json()


def test_unreachable_upstream_looks_like_a_connection_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with FaultProxy(f"http://127.0.0.1:{port}") as proxy, pytest.raises(requests.ConnectionError):
        requests.get(f"{proxy.url}/json", timeout=WAIT)


# -- SSE relay -----------------------------------------------------------------------------


def test_events_are_relayed_as_they_arrive(proxy, upstream, connect):
    client = connect()
    assert client.status == 200
    assert client.headers["content-type"] == "text/event-stream"
    stream = upstream.next_stream()
    stream.send(1)
    assert client.next_event() == {"n": 1}  # event 2 does not exist upstream yet
    stream.send(2)
    assert client.next_event() == {"n": 2}
    proxy.wait_for_events(2, timeout=WAIT)
    assert (proxy.streams_opened, proxy.events_relayed, proxy.open_streams) == (1, 2, 1)


def test_a_clean_upstream_end_ends_the_body_cleanly(upstream, connect):
    client = connect()
    stream = upstream.next_stream()
    stream.send(1)
    stream.end()
    assert client.numbers(1) == [1]
    assert client.next_event() is None
    assert client.finished


def test_wait_for_streams_raises_timeout_error(proxy):
    with pytest.raises(TimeoutError, match="1 streams opened"):
        proxy.wait_for_streams(1, timeout=0.05)


# -- cut_after -----------------------------------------------------------------------------


def test_cut_after_three_sends_exactly_three_then_eof_and_the_next_stream_passes(
    proxy, upstream, connect
):
    first = connect()
    proxy.wait_for_streams(1, timeout=WAIT)
    proxy.cut_after(3)
    upstream.next_stream().send(1, 2, 3, 4, 5)  # one chunk holding five events
    assert first.numbers(3) == [1, 2, 3]
    assert first.next_event() is None
    assert not first.finished  # abrupt: no final chunk
    second = connect()
    stream = upstream.next_stream()
    for n in (6, 7, 8, 9):
        stream.send(n)
        assert second.numbers(1) == [n]
    proxy.wait_for_events(7, timeout=WAIT)
    assert proxy.events_relayed == 7


def test_cut_armed_before_the_stream_opens_applies_to_it(proxy, upstream, connect):
    proxy.cut_after(2)
    client = connect()
    stream = upstream.next_stream()
    stream.send(1)
    assert client.numbers(1) == [1]
    stream.send(2)
    assert client.numbers(1) == [2]
    assert client.next_event() is None


def test_cut_counts_a_frame_split_across_chunks_once(proxy, upstream, connect):
    client = connect()
    proxy.wait_for_streams(1, timeout=WAIT)
    proxy.cut_after(1)
    stream = upstream.next_stream()
    stream.send_raw(b'data: {"n": 1}\n')
    stream.send_raw(b'\ndata: {"n": 2}\n\n')
    assert client.numbers(1) == [1]
    assert client.next_event() is None
    assert proxy.events_relayed == 1


def test_cut_every_cuts_each_stream_after_its_own_count_until_turned_off(proxy, upstream, connect):
    proxy.cut_every(2)
    for first in (1, 10):
        client = connect()
        upstream.next_stream().send(first, first + 1, first + 2)
        assert client.numbers(2) == [first, first + 1]
        assert client.next_event() is None
        assert not client.finished
    proxy.cut_every(None)
    client = connect()
    stream = upstream.next_stream()
    stream.send(20, 21, 22)
    assert client.numbers(3) == [20, 21, 22]


# -- stall, drop, refuse -------------------------------------------------------------------


def test_stall_holds_events_until_release(proxy, upstream, connect):
    client = connect()
    stream = upstream.next_stream()
    stream.send(1)
    assert client.numbers(1) == [1]
    proxy.stall()
    stream.send(2)
    stream.wait_written()
    with pytest.raises(TimeoutError):
        client.next_event(timeout=SILENCE)
    proxy.release()
    assert client.numbers(1) == [2]
    stream.send(3)
    assert client.numbers(1) == [3]


def test_stall_applies_to_streams_opened_during_it(proxy, upstream, connect):
    proxy.stall()
    client = connect()  # headers arrive, events do not
    assert client.status == 200
    stream = upstream.next_stream()
    stream.send(1)
    stream.wait_written()
    with pytest.raises(TimeoutError):
        client.next_event(timeout=SILENCE)
    proxy.release()
    assert client.numbers(1) == [1]


def test_drop_streams_closes_every_open_stream(proxy, upstream, connect):
    clients = [connect(), connect()]
    proxy.wait_for_streams(2, timeout=WAIT)
    for _ in clients:
        upstream.next_stream().send(1)
    assert [c.numbers(1) for c in clients] == [[1], [1]]
    assert proxy.drop_streams() == 2
    for client in clients:
        assert client.next_event() is None
        assert not client.finished
    again = connect()
    upstream.next_stream().send(5)
    assert again.numbers(1) == [5]


def test_refuse_for_resets_connections_until_the_clock_passes(upstream):
    clock = FakeClock()
    with FaultProxy(upstream.url, clock=clock) as proxy:
        proxy.refuse_for(3)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{proxy.url}/json", timeout=WAIT)
        clock.now += 2.9
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{proxy.url}/json", timeout=WAIT)
        proxy.wait_for_refusals(2, timeout=WAIT)
        clock.now += 0.1
        assert requests.get(f"{proxy.url}/json", timeout=WAIT).status_code == 200
        assert proxy.connections_refused == 2


def test_refuse_streams_for_resets_only_event_streams(upstream):
    clock = FakeClock()
    with FaultProxy(upstream.url, clock=clock) as proxy:
        proxy.refuse_streams_for(3)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{proxy.url}/event", timeout=WAIT, stream=True)
        assert requests.get(f"{proxy.url}/json", timeout=WAIT).status_code == 200
        proxy.wait_for_refusals(1, timeout=WAIT)
        clock.now += 3
        client = SseClient(proxy.url)
        upstream.next_stream().send(1)
        assert client.numbers(1) == [1]
        client.sock.close()
        assert proxy.connections_refused == 1


@pytest.mark.serial  # a bound in seconds
def test_stop_returns_promptly_with_a_stalled_stream_open(upstream):
    proxy = FaultProxy(upstream.url).start()
    client = SseClient(proxy.url)
    proxy.stall()
    stream = upstream.next_stream()
    stream.send(1)
    stream.wait_written()
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 2
    assert client.next_event() is None
    client.sock.close()


# -- construction --------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "example.com", "localhost"])
def test_non_loopback_listen_host_is_refused(host):
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("http://127.0.0.1:9", host=host)


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1:80", "https://127.0.0.1:1", "http://127.0.0.1", "127.0.0.1:80"]
)
def test_bad_upstream_is_refused(url):
    with pytest.raises(ValueError, match="upstream"):
        FaultProxy(url)


# -- frame counting ------------------------------------------------------------------------

STREAM = b'data: {"n": 1}\n\ndata: {"n": 2}\r\n\r\n\n\n: comment\n\ndata: x\n'
STREAM_ENDS = [16, 34, 47]  # the blank lines after frame 2 dispatch nothing


@pytest.mark.parametrize("split", range(len(STREAM) + 1))
def test_frame_counter_finds_the_same_ends_at_every_split_point(split):
    counter = FrameCounter()
    ends = counter.feed(STREAM[:split]) + [split + e for e in counter.feed(STREAM[split:])]
    assert ends == STREAM_ENDS


def test_frame_counter_byte_at_a_time():
    counter = FrameCounter()
    ends = [i + 1 for i in range(len(STREAM)) if counter.feed(STREAM[i : i + 1])]
    assert ends == STREAM_ENDS


HEARTBEAT = b'data: {"type":"server.heartbeat","properties":{}}\n\n'
COMMENT = b": heartbeat\n\n"  # opencode 2.x's heartbeat
PART = b'data: {"type":"message.part.updated","properties":{"n":1}}\n\n'


@pytest.mark.parametrize("cut", range(1, len(PART + HEARTBEAT + PART + COMMENT + PART)))
def test_a_muted_stream_relays_heartbeats_only_whatever_the_splits(cut):
    stream = PART + HEARTBEAT + PART + COMMENT + PART
    counter, only = FrameCounter(), HeartbeatsOnly(inside=False)
    out = b"".join(only.feed(chunk, counter.feed(chunk)) for chunk in (stream[:cut], stream[cut:]))
    assert out == HEARTBEAT + COMMENT


def test_muting_mid_frame_finishes_the_frame_in_flight_first():
    counter = FrameCounter()
    first, rest = PART[:10], PART[10:] + PART + HEARTBEAT
    counter.feed(first)  # relayed before the mute
    only = HeartbeatsOnly(inside=counter.inside)
    assert counter.inside
    assert only.feed(rest, counter.feed(rest)) == PART[10:] + HEARTBEAT
