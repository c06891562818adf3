"""SseReaderActor against a scripted loopback SSE server; a fake clock for watchdog and outage."""

from __future__ import annotations

import http.server
import json
import queue
import socket
import threading

import pytest

from actors.opencode_client import OpencodeClient
from actors.sse_reader import ReconnectPolicy, SseReaderActor
from core.opencode_versions import capabilities
from core.protocol import wire_for
from messages.stream import StreamConnected, StreamDropped, StreamFailed

pytestmark = pytest.mark.timeout(30)

CONNECTED = {"type": "server.connected", "properties": {}}


OPENCODE_1_14 = wire_for(capabilities("1.14.48"))  # reads `/global/event`, unscoped


def frame(event):
    return b"data: " + json.dumps(event).encode() + b"\n\n"


class FakeClock:
    """Time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def ticking(self, seconds):
        """A subscriber that moves time on by `seconds` for every batch (the stream was up)."""
        return lambda _batch: setattr(self, "now", self.now + seconds)


class ScriptedEvents(http.server.ThreadingHTTPServer):
    """Each `/event` connection plays the next script: a status, bytes (or a list of parts, each
    after the first sent when the test puts something in `go`), then an ending: "eof" closes,
    "hold" keeps the connection open (silent) until the test releases it. Endings starting with
    "chunked" send the body chunked, all its chunks in one write, as opencode does when events
    pile up: "chunked" ends with the last chunk, "chunked-cut" stops inside one."""

    daemon_threads = True

    def __init__(self, scripts):
        self.scripts = queue.Queue()
        for script in scripts:
            self.scripts.put(script)
        self.release = threading.Event()
        self.go = queue.Queue()
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
        if ending.startswith("chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in body)
            self.wfile.write(chunks + (b"0\r\n\r\n" if ending == "chunked" else b"7\r\nhal"))
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_header("Connection", "close")
        self.end_headers()
        for n, part in enumerate(body if isinstance(body, list) else [body]):
            if n:
                server.go.get(timeout=10)
            self.wfile.write(part)
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


def start_reader(server, clock=None, on_batch=None, secrets=(), port=None, *, wire=None, **policy):
    published, batches = queue.Queue(), queue.Queue()
    port = port or server.server_port
    url = f"http://127.0.0.1:{port}"
    client = OpencodeClient(url, password="pw", directory="/proj", wire=wire)
    options = {"initial": 0.01, "maximum": 0.05, **policy}
    reader = SseReaderActor.start(
        client=client,
        subscribers=[on_batch or batches.put],
        publish=published.put,
        policy=ReconnectPolicy(**options),
        clock=clock or FakeClock(),
        tick=None,
        secrets=secrets,
    )
    return reader, published, batches


def collect(published, kind, count, timeout=10):
    """The first `count` messages of `kind`, and everything published on the way."""
    seen, found = [], []
    while len(found) < count:
        seen.append(published.get(timeout=timeout))
        if isinstance(seen[-1], kind):
            found.append(seen[-1])
    return found, seen


def next_of(published, kind, timeout=5):
    return collect(published, kind, 1, timeout)[0][0]


def test_connected_only_after_server_connected_and_events_arrive_as_batches(serve):
    hello = {"type": "session.idle", "properties": {"sessionID": "ses_1"}}
    server = serve([(200, frame(CONNECTED) + frame(hello) + frame(hello), "hold")])
    reader, published, batches = start_reader(server)
    assert next_of(published, StreamConnected) == StreamConnected(connection=1)
    batch = batches.get(timeout=5)
    assert batch.events == (CONNECTED, hello, hello)
    assert batch.size == len(frame(CONNECTED) + frame(hello) * 2)
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


@pytest.mark.parametrize(
    ("heartbeat", "quiet"),
    [(10.0, 30), (None, 300)],  # three heartbeats; five minutes from opencode 1.14 (none)
)
def test_watchdog_shuts_a_connection_silent_for_its_quiet_limit(serve, heartbeat, quiet):
    clock = FakeClock()
    server = serve([(200, frame(CONNECTED), "hold"), (200, frame(CONNECTED), "hold")])
    reader, published, _ = start_reader(server, clock=clock, heartbeat=heartbeat)
    next_of(published, StreamConnected)
    clock.now += quiet - 0.1
    assert reader.proxy().check_watchdog().get(timeout=5) is False
    clock.now += 0.2
    assert reader.proxy().check_watchdog().get(timeout=5) is True
    assert next_of(published, StreamDropped).reason == f"watchdog: no bytes for {quiet}s"
    # the next connection comes (without heartbeats a shut after five quiet minutes worked, so
    # no outage was spent even though 300 s passed on the outage clock)
    assert next_of(published, StreamConnected).connection == 2
    reader.stop()


def test_a_batch_weighs_the_bytes_read_since_the_last_one(serve):
    partial, rest = b'data: {"type": "session.idle", ', b'"properties": {}}\n\n'
    server = serve([(200, [frame(CONNECTED), partial, rest], "hold")])
    reader, _, batches = start_reader(server)
    assert batches.get(timeout=5).size == len(frame(CONNECTED))
    server.go.put("partial")
    server.go.put("rest")
    batch = batches.get(timeout=5)
    assert batch.events == ({"type": "session.idle", "properties": {}},)
    assert batch.size == len(partial + rest)  # the read that held no event counts too
    reader.stop()


LOST = "event stream lost: no working connection for 60s (last: {})"
STATUS = {"type": "session.status", "properties": {}}
WORKING = frame(CONNECTED) + frame(STATUS) * 3


def test_a_stream_cut_every_few_events_is_reconnected_forever_with_small_waits(serve):
    clock = FakeClock()  # 5 s a connection: 51 last over four minutes, four outage budgets
    server = serve([(200, WORKING, "eof")] * 50 + [(200, WORKING, "hold")])
    reader, published, _ = start_reader(
        server, clock=clock, on_batch=clock.ticking(5), initial=0.01, maximum=1.0, outage=60
    )
    connected, seen = collect(published, StreamConnected, 51)
    assert [c.connection for c in connected] == list(range(1, 52))
    dropped = [m for m in seen if isinstance(m, StreamDropped)]
    assert [d.reason for d in dropped] == ["end of stream"] * 50
    # Every break follows a working connection: the backoff restarts each time, so no wait
    # grows past the first attempt's window (with a growing backoff they reach 1 s).
    assert max(d.retry_in for d in dropped) <= 0.01
    assert not any(isinstance(m, StreamFailed) for m in seen)
    reader.stop()


def test_connections_that_never_work_fail_once_the_outage_passes(serve):
    clock = FakeClock()
    server = serve([(200, frame(CONNECTED), "eof")] * 30)  # `server.connected`, then nothing
    reader, published, _ = start_reader(server, clock=clock, on_batch=clock.ticking(5), outage=60)
    failed, seen = collect(published, StreamFailed, 1)
    assert failed[0].reason == LOST.format("end of stream")
    assert clock.now == 1060.0
    assert server.connections.qsize() == 12  # 12 connections of 5 s: the budget, not fewer
    assert len([m for m in seen if isinstance(m, StreamDropped)]) == 11
    reader.stop()


def test_a_working_connection_restarts_the_outage(serve):
    clock = FakeClock()
    idle = (200, frame(CONNECTED), "eof")
    scripts = [idle] * 10 + [(200, WORKING, "eof")] + [idle] * 10 + [(200, WORKING, "hold")]
    server = serve(scripts)  # 50 s of useless connections on either side of the working one
    reader, published, _ = start_reader(server, clock=clock, on_batch=clock.ticking(5), outage=60)
    connected, seen = collect(published, StreamConnected, 22)
    assert connected[-1].connection == 22
    assert not any(isinstance(m, StreamFailed) for m in seen)
    reader.stop()


def closed_port():
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]  # nobody listens on it once this returns


def test_refused_connections_fail_once_the_outage_passes():
    clock = FakeClock()
    reader, published, _ = start_reader(
        None, clock=clock, port=closed_port(), initial=0.01, maximum=0.04, outage=60
    )
    dropped, seen = collect(published, StreamDropped, 4)
    assert {d.reason for d in dropped} == {"cannot connect (ConnectionError)"}
    assert all(d.retry_in <= 0.01 * 2**n for n, d in enumerate(dropped))  # it backs off
    assert not any(isinstance(m, StreamFailed) for m in seen)
    clock.now += 60
    failed = next_of(published, StreamFailed)
    assert failed.reason == LOST.format("cannot connect (ConnectionError)")
    reader.stop()


def test_stop_interrupts_the_backoff():
    before = set(threading.enumerate())
    reader, published, _ = start_reader(
        None, port=closed_port(), initial=30.0, maximum=30.0, outage=1000
    )
    while next_of(published, StreamDropped).retry_in < 1.0:
        pass  # a jittered wait can be tiny: wait for one that is long
    (thread,) = [t for t in threading.enumerate() if t.name == "sse-reader" and t not in before]
    reader.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert published.empty()  # a stop is no news


def test_the_password_split_across_deltas_never_reaches_a_subscriber(serve):
    secret = "Zq9-XW_7pK2mVb4nT8yLc1Rf6hGd3Js5"
    pieces = ["pw: Zq9-XW_7", "pK2mVb4nT8yLc1", f"Rf6hGd3Js5 ok, and whole: {secret}"]
    props = {"partID": "prt_1", "field": "text"}
    deltas = [{"type": "message.part.delta", "properties": {**props, "delta": p}} for p in pieces]
    server = serve([(200, frame(CONNECTED) + b"".join(map(frame, deltas)), "hold")])
    reader, _, batches = start_reader(server, secrets=(secret,))
    events = []
    while len(events) < 4:
        events += batches.get(timeout=5).events
    texts = [e["properties"]["delta"] for e in events[1:]]
    assert "".join(texts) == "pw: [redacted] ok, and whole: [redacted]"
    assert not any(secret[k : k + 3] in t for t in texts for k in range(len(secret) - 2))
    reader.stop()


def test_the_global_stream_of_1_14_is_unwrapped_before_secrets_are_masked(serve):
    secret = "Zq9-XW_7pK2mVb4nT8yLc1Rf6hGd3Js5"
    pieces = ["pw: Zq9-XW_7", "pK2mVb4nT8yLc1", "Rf6hGd3Js5 ok"]
    props = {"partID": "prt_1", "field": "text"}
    deltas = [{"type": "message.part.delta", "properties": {**props, "delta": p}} for p in pieces]
    wrapped = [{"directory": "/proj", "project": "p", "payload": d} for d in deltas]
    other = {"directory": "/elsewhere", "payload": {"type": "session.idle", "properties": {}}}
    body = frame({"payload": CONNECTED}) + frame(other) + b"".join(map(frame, wrapped))
    server = serve([(200, body, "hold")])
    reader, published, batches = start_reader(server, secrets=(secret,), wire=OPENCODE_1_14)
    assert next_of(published, StreamConnected).connection == 1
    events, texts = [], []
    while len(events) < 4:
        batch = batches.get(timeout=5)
        events, texts = events + list(batch.events), texts + list(batch.texts)
    assert [e["type"] for e in events] == ["server.connected", *["message.part.delta"] * 3]
    assert "".join(e["properties"]["delta"] for e in events[1:]) == "pw: [redacted] ok"
    assert [json.loads(text) for text in texts] == events  # the transcript gets the payloads
    assert server.connections.get(timeout=5) == "/global/event"  # every directory: no scope
    reader.stop()


def test_the_global_stream_keeps_events_named_by_the_resolved_directory(serve, tmp_path):
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real)  # the phase names the link; opencode names the real folder
    idle = {"type": "session.idle", "properties": {"sessionID": "ses_1"}}
    body = frame({"payload": CONNECTED}) + frame({"directory": str(real), "payload": idle})
    server = serve([(200, body, "hold")])
    url = f"http://127.0.0.1:{server.server_port}"
    client = OpencodeClient(url, password="pw", directory=str(link), wire=OPENCODE_1_14)
    batches = queue.Queue()
    reader = SseReaderActor.start(
        client=client,
        subscribers=[batches.put],
        publish=lambda _message: None,
        policy=ReconnectPolicy(),
        tick=None,
    )
    events = []
    while len(events) < 2:
        events += batches.get(timeout=5).events
    assert events[1] == idle
    reader.stop()


def test_a_chunked_body_is_read_many_chunks_at_a_time(serve):
    hello = {"type": "session.idle", "properties": {"sessionID": "ses_1"}}
    events = [frame(CONNECTED), *(frame(hello) for _ in range(20))]
    server = serve([(200, events, "chunked")])
    reader, published, batches = start_reader(server)
    got, sizes = [], []
    while len(got) < 21:
        events = batches.get(timeout=5).events
        got.extend(events)
        sizes.append(len(events))
    assert got == [CONNECTED, *([hello] * 20)]
    assert max(sizes) > 1  # read through http.client, every chunk would be a batch of one
    assert next_of(published, StreamDropped).reason == "end of stream"
    reader.stop()


def test_a_chunked_body_cut_inside_a_chunk_is_a_lost_connection(serve):
    server = serve([(200, [frame(CONNECTED)], "chunked-cut")])
    reader, published, _ = start_reader(server)
    assert next_of(published, StreamDropped).reason == "connection lost (ChunkedError)"
    reader.stop()
