"""A small stand-in for `opencode serve`'s event stream, in a process of its own.

`python -m tests.bench.sse_server replay EVENTS [--framing event|64k]` serves a stream built
from the captures (`tests.bench.stream`); `... paced RATE SECONDS` serves text deltas at a
steady rate, each carrying its send time (`time.perf_counter_ns()`: CLOCK_MONOTONIC on Linux,
the same clock in every process). It prints its URL, then serves until its stdin closes.

`GET /event` answers like opencode 1.18.33 (chunked, by default one HTTP chunk per event) at
full speed. A stream is served once per `POST /bench/arm` (the `replay` stream) or once (the
`paced` one); any other `GET /event` (the runner's reader reconnecting after the end) gets the
headers and then nothing until the client goes. The few other routes the actors call answer
minimal JSON: `GET /session/status` -> {}, `GET /session/{id}/message` -> [], `GET
/global/health` -> healthy, any `POST` (abort, permission replies, question rejections) -> true.

`--line 2` serves opencode 2.x's stream instead (`GET /api/event`, 2.x's events and envelope),
and its few routes: `GET /api/session/active` -> {}, any other `GET /api/...` -> `{"data": []}`.

`SseServer` starts it from a benchmark (a separate process, like opencode: its sending never
competes with the measured client for the interpreter).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.bench.stream import (
    CHUNK_SIZE,
    delta_event,
    delta_preamble,
    event_frames,
    sse_frame,
    stream_data,
)
from tests.helpers import PROJECT_ROOT

VERSION = "1.18.33"
VERSIONS = {1: VERSION, 2: "2.1.2"}
_MESSAGES = re.compile(r"^/session/[^/]+/message$")
_END = b"0\r\n\r\n"


def chunked(pieces: list[bytes]) -> bytes:
    """`pieces` as an HTTP/1.1 chunked body, one chunk each, ended."""
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + _END


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, source: Any, line: int = 1) -> None:
        self.source = source
        self.line = line
        self.armed = threading.Semaphore(0)
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup (it can hang offline)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-stream is normal here."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each event leaves at once, as opencode's server sends it
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == ("/api/event" if self.server.line == 2 else "/event"):
            self._stream()
        elif self.server.line == 2:
            self._json({} if path == "/api/session/active" else {"data": []})
        elif path == "/global/health":
            self._json({"healthy": True, "version": VERSION})
        elif path == "/session/status":
            self._json({})
        elif _MESSAGES.match(path):
            self._json([])
        else:
            self._json({"name": "NotFound"}, status=404)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?", 1)[0] == "/bench/arm":
            self.server.armed.release()
        self._json(True)

    def _json(self, body: Any, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache, no-transform")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        if self.server.armed.acquire(blocking=False):
            self.server.source(self.wfile)
        else:  # nothing to send: hold the connection until the client goes
            with contextlib.suppress(OSError):
                self.rfile.read(1)
            self.close_connection = True


def replay(events: int, framing: str, line: int = 1) -> Any:
    """The captures' stream, prebuilt and written at once (one chunk per event, or 64 KiB)."""
    data, _count = stream_data(events, line)
    if framing == "event":
        body = chunked(event_frames(data))
    else:
        body = chunked([data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)])

    def send(out: Any) -> None:
        out.write(body)

    return send


def paced(rate: float, seconds: float, line: int = 1) -> Any:
    """The delta preamble, then `rate` deltas a second for `seconds`, each stamped as sent."""
    count = round(rate * seconds)

    def send(out: Any) -> None:
        out.write(chunked([sse_frame(event) for event in delta_preamble(line)])[: -len(_END)])
        start = time.perf_counter()
        for index in range(count):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            frame = sse_frame(delta_event(f"t{time.perf_counter_ns()} ", line))
            out.write(b"%x\r\n%s\r\n" % (len(frame), frame))
        out.write(_END)

    return send


def main(argv: list[str] | None = None) -> int:
    """Serve until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.sse_server")
    parser.add_argument("--line", type=int, choices=(1, 2), default=1, help="opencode's line")
    modes = parser.add_subparsers(dest="mode", required=True)
    replaying = modes.add_parser("replay")
    replaying.add_argument("events", type=int)
    replaying.add_argument("--framing", choices=("event", "64k"), default="event")
    pacing = modes.add_parser("paced")
    pacing.add_argument("rate", type=float)
    pacing.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    if args.mode == "replay":
        server = _Server(replay(args.events, args.framing, args.line), args.line)
    else:
        server = _Server(paced(args.rate, args.seconds, args.line), args.line)
        server.armed.release()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    print(f"http://127.0.0.1:{server.server_port}", flush=True)
    sys.stdin.read()
    server.shutdown()
    return 0


class SseServer:
    """`python -m tests.bench.sse_server ARGS...` as a context manager; `url` once started."""

    def __init__(self, *args: str) -> None:
        self._argv = [sys.executable, "-m", "tests.bench.sse_server", *args]
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> SseServer:
        self._proc = subprocess.Popen(
            self._argv,
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.__exit__()
            raise RuntimeError(f"the SSE server did not start: {' '.join(self._argv)}")
        return self

    def arm(self) -> None:
        """Serve the replay stream to the next `GET /event`."""
        import requests

        requests.post(self.url + "/bench/arm", timeout=10).raise_for_status()

    def __exit__(self, *_exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
