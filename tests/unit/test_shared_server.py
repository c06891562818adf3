"""SharedServer's stream hubs: a hub whose stream failed is replaced for the next phase."""

from __future__ import annotations

import http.server
import queue
import threading

import pytest

from actors.opencode_client import OpencodeClient
from actors.process import ServerSpec
from actors.sse_reader import ReconnectPolicy
from messages.stream import StreamConnected, StreamFailed
from runner.servers.shared import SharedServer, stream_key
from runner.servers.streams import StreamHub

pytestmark = pytest.mark.timeout(20)


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def gone(tmp_path):
    """A loopback server whose `/event` is 404: every reader fails at once."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_failed_hub_is_replaced_for_the_next_phase(gone, tmp_path):
    shared = SharedServer(ServerSpec(directory=str(tmp_path), log_path=str(tmp_path / "log")))
    client = OpencodeClient(gone, password=None, directory=str(tmp_path))
    first = shared.hub(client, ReconnectPolicy(), ())
    news = queue.Queue()
    first.subscribe(news.put)
    assert isinstance(news.get(timeout=10), StreamFailed)
    assert first.failed
    second = shared.hub(client, ReconnectPolicy(), ())
    assert second is not first
    shared.stop()


class _Open(http.server.BaseHTTPRequestHandler):
    """An event stream that stays up (a comment line every 50 ms) until the client leaves."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            self.wfile.write(b'data: {"type": "server.connected", "properties": {}}\n\n')
            while not self.server.closing.wait(0.05):
                self.wfile.write(b": ping\n\n")
                self.wfile.flush()
        except OSError:
            return

    def log_message(self, *args):
        pass


def test_a_directorys_reader_stops_with_its_last_phase(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Open)
    server.closing = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    shared = SharedServer(ServerSpec(directory=str(tmp_path), log_path=str(tmp_path / "log")))
    client = OpencodeClient(url, password=None, directory=str(tmp_path))
    try:
        first = shared.hub(client, ReconnectPolicy(), ())
        news = queue.Queue()
        first.subscribe(news.put)
        assert isinstance(news.get(timeout=10), StreamConnected)
        assert shared.hub(client, ReconnectPolicy(), ()) is first  # a second phase shares it
        reader = first._reader
        key = stream_key(client, ReconnectPolicy(), ())
        shared.release(key)
        assert reader.is_alive()  # one phase still uses it
        shared.release(key)
        assert not reader.is_alive()  # stopped with the last one
        assert shared.hub(client, ReconnectPolicy(), ()) is not first  # the next gets a new one
    finally:
        shared.stop()
        server.closing.set()
        server.shutdown()
        server.server_close()


def test_a_phase_with_other_timeouts_does_not_inherit_the_first_phases_reader(tmp_path):
    """Two phases in one directory: the second, with a shorter outage budget, gets a reader
    of its own (it used to share the first phase's, and so its outage budget): when the
    server goes away, the hasty phase's stream fails and the patient one's goes on trying."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Open)
    server.closing = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    shared = SharedServer(ServerSpec(directory=str(tmp_path), log_path=str(tmp_path / "log")))
    client = OpencodeClient(url, password=None, directory=str(tmp_path))
    patient, hasty = ReconnectPolicy(outage=600.0), ReconnectPolicy(outage=0.5)
    try:
        first = shared.hub(client, patient, ())
        second = shared.hub(client, hasty, ())
        assert second is not first
        assert shared.hub(client, hasty, ()) is second  # read alike: shared
        assert shared.hub(client, hasty, ("s3cret",)) is not second  # other secrets to mask
        news = {"patient": queue.Queue(), "hasty": queue.Queue()}
        first.subscribe(news["patient"].put)
        second.subscribe(news["hasty"].put)
        for name, inbox in news.items():
            assert isinstance(inbox.get(timeout=10), StreamConnected), name
        server.closing.set()  # the streams end, and nothing listens any more
        server.shutdown()
        server.server_close()
        while not isinstance(news["hasty"].get(timeout=15), StreamFailed):
            pass
        assert second.failed
        assert not first.failed  # its own 600 s budget: still trying
        shared.release(stream_key(client, patient, ()))
        assert not first._reader.is_alive()
    finally:
        shared.stop()
        server.closing.set()


def test_a_late_subscriber_hears_of_the_live_connection_at_once():
    hub = StreamHub()
    hub.on_news(StreamConnected(connection=3))
    seen = []
    unsubscribe = hub.subscribe(seen.append)
    assert seen == [StreamConnected(connection=3)]
    unsubscribe()
    hub.on_news(StreamConnected(connection=4))
    assert seen == [StreamConnected(connection=3)]
    assert not hub.failed
