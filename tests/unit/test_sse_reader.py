"""SseReaderActor against a scripted loopback SSE server, with a fake clock for the watchdog."""

from __future__ import annotations

import http.server
import json
import queue
import threading

import pytest

from actors.opencode_client import OpencodeClient
from actors.sse_reader import ReconnectPolicy, SseReaderActor
from messages.stream import EventsReceived, StreamConnected, StreamDropped, StreamFailed

pytestmark = pytest.mark.timeout(30)

CONNECTED = {"type": "server.connected", "properties": {}}


def frame(event):
    return b"data: " + json.dumps(event).encode() + b"\n\n"


class FakeClock:
    """Time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedEvents(http.server.ThreadingHTTPServer):
    """Each `/event` connection plays the next script: a status, then bytes, then an ending.

    Endings: "eof" closes, "hold" keeps the connection open (silent) until the test releases it.
    """

    daemon_threads = True

    def __init__(self, scripts):
        self.scripts = queue.Queue()
        for script in scripts:
            self.scripts.put(script)
        self.release = threading.Event()
        self.connections = queue.Queue()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        server = self.server
        status, body, ending = server.scripts.get(timeout=5)
        server.connections.put(self.path)
        self.send_response(status)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if ending == "hold":
            server.release.wait(timeout=20)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(scripts):
        server = ScriptedEvents(scripts)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.release.set()
        server.shutdown()
        server.server_close()


def start_reader(server, clock=None, on_batch=None, **policy):
    published, batches = queue.Queue(), queue.Queue()
    client = OpencodeClient(
        f"http://127.0.0.1:{server.server_port}", password="pw", directory="/proj"
    )
    options = {"initial": 0.01, "maximum": 0.05, "attempts": 5, **policy}
    reader = SseReaderActor.start(
        client=client,
        subscribers=[on_batch or batches.put],
        publish=published.put,
        policy=ReconnectPolicy(**options),
        clock=clock or FakeClock(),
        tick=None,
    )
    return reader, published, batches


def next_of(q, kind, timeout=5):
    while True:
        message = q.get(timeout=timeout)
        if isinstance(message, kind):
            return message


def test_connected_only_after_server_connected_and_events_arrive_as_batches(serve):
    hello = {"type": "session.idle", "properties": {"sessionID": "ses_1"}}
    server = serve([(200, frame(CONNECTED) + frame(hello) + frame(hello), "hold")])
    reader, published, batches = start_reader(server)
    assert next_of(published, StreamConnected) == StreamConnected(connection=1)
    batch = batches.get(timeout=5)
    assert isinstance(batch, EventsReceived)
    assert batch.events == (CONNECTED, hello, hello)
    assert server.connections.get(timeout=5) == "/event?directory=%2Fproj"
    reader.stop()


def test_headers_without_server_connected_are_not_connected(serve):
    server = serve([(200, b": comment only\n\n", "hold")])
    reader, published, _ = start_reader(server)
    server.connections.get(timeout=5)
    with pytest.raises(queue.Empty):
        next_of(published, StreamConnected, timeout=0.5)
    reader.stop()


def test_eof_is_a_drop_and_the_reconnect_is_connection_two(serve):
    server = serve([(200, frame(CONNECTED), "eof"), (200, frame(CONNECTED), "hold")])
    reader, published, _ = start_reader(server)
    assert next_of(published, StreamConnected).connection == 1
    dropped = next_of(published, StreamDropped)
    assert dropped.reason == "end of stream"
    reconnected = next_of(published, StreamConnected)
    assert (reconnected.connection, reconnected.is_reconnect) == (2, True)
    reader.stop()


def test_truncated_frame_at_eof_counts_as_a_break(serve):
    partial = b'data: {"type": "session.idle"'
    server = serve([(200, frame(CONNECTED) + partial, "eof"), (200, frame(CONNECTED), "hold")])
    reader, published, batches = start_reader(server)
    dropped = next_of(published, StreamDropped)
    assert dropped.reason == "truncated frame at end of stream"
    assert batches.get(timeout=5).events == (CONNECTED,)
    reader.stop()


@pytest.mark.parametrize("status", [401, 404])
def test_401_and_404_are_not_retried(serve, status):
    server = serve([(status, b"", "eof"), (200, frame(CONNECTED), "hold")])
    reader, published, _ = start_reader(server)
    failed = next_of(published, StreamFailed)
    assert failed.reason == f"GET /event -> HTTP {status}"
    assert server.scripts.qsize() == 1  # never asked again
    reader.stop()


def test_reconnect_budget_spent_is_a_failure(serve):
    server = serve([(500, b"", "eof")] * 3)
    reader, published, _ = start_reader(server, attempts=3)
    failed = next_of(published, StreamFailed)
    assert "not recovered after retries" in failed.reason
    assert "HTTP 500" in failed.reason
    reader.stop()


def test_watchdog_shuts_a_silent_connection_after_three_heartbeats(serve):
    clock = FakeClock()
    server = serve([(200, frame(CONNECTED), "hold"), (200, frame(CONNECTED), "hold")])
    reader, published, _ = start_reader(server, clock=clock, heartbeat=10.0)
    next_of(published, StreamConnected)
    clock.now += 29.9
    assert reader.proxy().check_watchdog().get(timeout=5) is False
    clock.now += 0.2
    assert reader.proxy().check_watchdog().get(timeout=5) is True
    assert next_of(published, StreamDropped).reason == "watchdog: no bytes for 30s"
    assert next_of(published, StreamConnected).connection == 2
    reader.stop()


def test_a_healthy_connection_resets_the_budget(serve):
    clock = FakeClock()
    scripts = [(200, frame(CONNECTED), "eof")] * 4 + [(200, frame(CONNECTED), "hold")]
    server = serve(scripts)

    def time_passes(batch):
        # Each stream stays up past `healthy_after` before it breaks, so every drop starts a
        # fresh budget: four drops with a budget of one attempt never exhaust it.
        clock.now += 60

    reader, published, _ = start_reader(
        server, clock=clock, on_batch=time_passes, attempts=1, healthy_after=30
    )
    for connection in range(1, 6):
        assert next_of(published, StreamConnected).connection == connection
    reader.stop()


def test_an_unhealthy_connection_spends_the_budget(serve):
    scripts = [(200, frame(CONNECTED), "eof")] * 4 + [(200, frame(CONNECTED), "hold")]
    server = serve(scripts)
    reader, published, _ = start_reader(server, attempts=2, healthy_after=30)
    failed = next_of(published, StreamFailed)
    assert "not recovered after retries" in failed.reason
    reader.stop()


def test_outage_counts_silence_not_the_time_the_stream_was_up(serve):
    clock = FakeClock()
    scripts = [(200, frame(CONNECTED), "eof")] * 6 + [(200, frame(CONNECTED), "hold")]
    server = serve(scripts)

    def time_passes(batch):
        clock.now += 5  # each short-lived stream was up 5 s: never healthy, never silent

    reader, published, _ = start_reader(
        server, clock=clock, on_batch=time_passes, attempts=10, healthy_after=30, outage=8
    )
    for connection in range(1, 8):
        assert next_of(published, StreamConnected).connection == connection
    reader.stop()


def test_outage_ends_the_retries_once_nothing_arrives_for_long(serve):
    clock = FakeClock()
    server = serve([(200, frame(CONNECTED), "eof")] + [(500, b"", "eof")] * 20)

    def time_passes(batch):
        clock.now += 100  # the stream then stays silent past the outage budget

    reader, published, _ = start_reader(
        server, clock=clock, on_batch=time_passes, attempts=50, healthy_after=1000, outage=60
    )
    failed = next_of(published, StreamFailed)
    assert "not recovered after retries" in failed.reason
    assert server.scripts.qsize() > 15  # it stopped for silence, not for the attempt count
    reader.stop()
