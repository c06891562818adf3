"""`MockLLM`: the scripted server's lifecycle (loopback bind, serve thread, prompt stop)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import socketserver
import sys
import threading
from collections.abc import Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mock._dispatch import Dispatcher
from mock._handler import Handler
from mock._journal import Journal
from mock._model import Script
from mock._script import load_script, parse_script

# How often the serve loop looks for a stop: a run on the embedded mock waits it out at its end.
_POLL_INTERVAL = 0.01
_STOP_TIMEOUT = 2.0
_BLANKET_STATUSES = (429, 500)


def loopback_host(host: str) -> str:
    """The IPv4 address to bind for `host`; ValueError unless it is loopback."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"refusing to listen on {host!r}: the mock binds loopback only "
            "(an address in 127.0.0.0/8, or localhost)"
        )
    return host


class MockServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its dispatcher, journal and open connections."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, dispatcher: Dispatcher, journal: Journal):
        self.dispatcher = dispatcher
        self.journal = journal
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A peer that went away (killed server, cut stream) is normal here, not a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup (`getfqdn` can hang offline)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def track(self, connection: socket.socket) -> None:
        """Remember an open connection."""
        with self._lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        """Forget a closed connection."""
        with self._lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open connection down so idle keep-alive readers return at once."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class MockLLM:
    """A scripted OpenAI-compatible LLM on a loopback port; use `with MockLLM(s) as m:`."""

    def __init__(
        self,
        script: Script | Mapping[str, Any] | list[Any] | str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        error_after: tuple[int, int] | None = None,
    ) -> None:
        self.script = _as_script(script)
        self._address = (loopback_host(host), port)
        if error_after is not None:
            status, count = error_after
            if status not in _BLANKET_STATUSES or count < 0:
                raise ValueError(f"error_after must be (429 or 500, N >= 0), got {error_after!r}")
        self._journal = Journal()
        self._dispatcher = Dispatcher(self.script, error_after=error_after)
        self._server: MockServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def journal(self) -> Journal:
        """Every request served so far (thread-safe)."""
        return self._journal

    @property
    def url(self) -> str:
        """The base URL for opencode's provider `baseURL`, ending in `/v1`."""
        if self._server is None:
            raise RuntimeError("MockLLM is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def rescript(self, script: Script | Mapping[str, Any] | list[Any] | str | Path) -> None:
        """Serve another script from the next request on: for a test that learns what to
        script (a run's password, say) only after the server behind the mock has started."""
        self.script = _as_script(script)
        self._dispatcher.rescript(self.script)

    def reset(self, script: Script | Mapping[str, Any] | list[Any] | str | Path) -> Journal:
        """Serve `script` as a fresh mock would: attempt counters from zero and a new journal
        (returned). For one mock behind one opencode server used by runs one after another."""
        self.script = _as_script(script)
        self._dispatcher.rescript(self.script, reset=True)
        self._journal = Journal()
        if self._server is not None:
            self._server.journal = self._journal
        return self._journal

    def start(self) -> MockLLM:
        """Bind and serve in a daemon thread; returns self."""
        if self._thread is not None:
            raise RuntimeError("a MockLLM starts once; make a new one")
        server = MockServer(self._address, dispatcher=self._dispatcher, journal=self._journal)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"mock-llm:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wake stalled answers, close connections, join the serve thread."""
        server = self._server
        thread = self._thread
        if server is None or thread is None or server.stopping.is_set():
            return
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(_STOP_TIMEOUT)

    def __enter__(self) -> MockLLM:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _as_script(script: Any) -> Script:
    if isinstance(script, Script):
        return script
    if isinstance(script, str | Path):
        return load_script(script)
    return parse_script(script)
