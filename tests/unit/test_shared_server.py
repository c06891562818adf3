"""SharedServer's stream hubs: a hub whose stream failed is replaced for the next phase."""

from __future__ import annotations

import http.server
import queue
import threading

import pytest

from actors._process import ServerSpec
from actors.opencode_client import OpencodeClient
from actors.sse_reader import ReconnectPolicy
from messages.stream import StreamConnected, StreamFailed
from runner.hub import StreamHub
from runner.shared_server import SharedServer

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
        shared.release(str(tmp_path))
        assert reader.is_alive()  # one phase still uses it
        shared.release(str(tmp_path))
        assert not reader.is_alive()  # stopped with the last one
        assert shared.hub(client, ReconnectPolicy(), ()) is not first  # the next gets a new one
    finally:
        shared.stop()
        server.closing.set()
        server.shutdown()
        server.server_close()


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
