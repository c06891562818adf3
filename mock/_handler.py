"""The HTTP side: one handler per connection, streaming chunks as HTTP/1.1 chunked SSE.

Each SSE event goes out as one HTTP chunk and is written straight to the socket (the
handler's `wfile` is unbuffered), so a client sees it when it is sent. A normal stream ends
with `data: [DONE]` and the zero-length chunk, and the connection may be reused. Faults:
- 429/500/400: a JSON error body (`Retry-After` when the fault has `retry_after`);
- stall: the first `after_chunks` events, then silence until the client leaves or the mock
  stops; cut: the first `after_chunks` events, then the socket is shut down mid-body, so a
  client sees a truncated chunked body (an error), never `[DONE]`;
- malformed: `data: {not json` after `after_chunks` events, then the rest of the stream
  as usual (the client must survive or report one bad event; `cut` covers the other case);
- drip: every event, `[DONE]` included, waits `delay` seconds first.
Stream faults apply to streamed requests only; a non-streamed request gets the full answer.
Every wait is on the server's `stopping` event, so `MockLLM.stop()` ends them at once.
"""

from __future__ import annotations

import contextlib
import json
import random
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from mock._chunks import (
    DONE_EVENT,
    MALFORMED_EVENT,
    Envelope,
    build_chunks,
    build_completion,
    encode_event,
    error_body,
    estimate,
)
from mock._dispatch import Decision, Dispatcher
from mock._journal import Journal
from mock._model import ERROR_KINDS, STREAM_KINDS, Fault

MODELS = {"object": "list", "data": [{"id": "mock-model", "object": "model"}]}
_HOLD_POLL = 0.05


class Host(Protocol):
    """What a handler needs of the server that runs it (`MockServer` is one)."""

    dispatcher: Dispatcher
    journal: Journal
    stopping: threading.Event

    def track(self, connection: Any) -> None:
        """Remember an open connection, to shut it down at stop."""

    def untrack(self, connection: Any) -> None:
        """Forget a connection that closed."""


class Handler(BaseHTTPRequestHandler):
    """Serves `/v1/models` and `/v1/chat/completions` from the server's dispatcher."""

    protocol_version = "HTTP/1.1"
    server_version = "MockLLM/1.0"
    server: Host  # the server that runs it, typed by what the handler needs of it

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the journal is the record, stderr belongs to the CLI's errors."""

    def setup(self) -> None:
        """Register the connection so `stop()` can shut it down."""
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        """Unregister the connection."""
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        """`GET /v1/models`, else 404."""
        if self.path.split("?")[0] != "/v1/models":
            self._not_found(None)
            return
        self._record(kind="models", status=200, body=None)
        self._send_json(200, MODELS)

    def do_POST(self) -> None:
        """`POST /v1/chat/completions`, else 404."""
        body, problem = self._read_body()
        if self.path.split("?")[0] != "/v1/chat/completions":
            self._not_found(body)
        elif problem is not None:
            self._record(kind="other", status=400, body=None)
            self._send_json(400, error_body("400", problem))
        else:
            try:
                self._answer(body, self.server.dispatcher.decide(body))
            except OSError:
                self.close_connection = True  # the client left mid-answer; nothing to tell it

    def _answer(self, body: Any, decision: Decision) -> None:
        request = body if isinstance(body, dict) else {}
        streamed = request.get("stream") is True
        fault = decision.fault
        if fault is not None and fault.kind in STREAM_KINDS and not streamed:
            fault = None  # stream faults need a stream; the plain answer is the useful fallback
        status = int(fault.kind) if fault is not None and fault.kind in ERROR_KINDS else 200
        entry = self._record(
            kind=decision.kind,
            turn=decision.turn_index,
            attempt=decision.attempt,
            fault=fault.kind if fault else None,
            status=status,
            body=body,
            branch=decision.branch,
        )
        if fault is not None and status != 200:
            self._send_error_fault(fault)
            return
        envelope = _envelope(request, entry.index)
        tokens = estimate(len(json.dumps(request.get("messages", []))))
        if streamed:
            chunks = build_chunks(decision.turn, envelope, prompt_tokens=tokens)
            self._stream(decision, fault, chunks)
        else:
            self._send_json(200, build_completion(decision.turn, envelope, prompt_tokens=tokens))

    def _stream(self, decision: Decision, fault: Fault | None, chunks: list[dict]) -> None:
        events = [encode_event(chunk) for chunk in chunks]
        kind = fault.kind if fault else None
        if kind == "malformed":
            events.insert(fault.after_chunks, MALFORMED_EVENT)
        if kind in ("cut", "stall"):
            events = events[: fault.after_chunks]
        else:
            events.append(DONE_EVENT)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        turn = decision.turn
        for number, event in enumerate(events):
            wait = fault.delay if kind == "drip" else (turn.delay if number else turn.first_token)
            if turn.jitter and wait:
                wait *= 1 + turn.jitter * random.uniform(-1, 1)
            if wait and self.server.stopping.wait(wait):
                self._drop()
                return
            self._write_chunk(event)
        if kind == "stall":
            self._hold_open()
        if kind in ("cut", "stall"):
            self._drop()
            return
        self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        # One HTTP chunk per SSE event; an empty one is the terminating chunk.
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _hold_open(self) -> None:
        while not self.server.stopping.wait(_HOLD_POLL):
            if self._client_gone():
                return

    def _client_gone(self) -> bool:
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _drop(self) -> None:
        # Shut the socket down mid-body: the client sees the stream end without [DONE].
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _read_body(self) -> tuple[Any, str | None]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # the unread body would corrupt the next request
            return None, "chunked request bodies are not supported; send Content-Length"
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            return None, "bad Content-Length"
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw:
            return None, None
        try:
            return json.loads(raw), None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return None, f"request body is not JSON: {exc}"

    def _not_found(self, body: Any) -> None:
        self._record(kind="other", status=404, body=body)
        message = f"mock: no route for {self.command} {self.path}"
        self._send_json(404, {"error": {"message": message, "type": "not_found", "code": None}})

    def _send_error_fault(self, fault: Fault) -> None:
        payload = json.dumps(error_body(fault.kind, fault.message)).encode("utf-8")
        self.send_response(int(fault.kind))
        self.send_header("Content-Type", "application/json")
        if fault.retry_after is not None:
            self.send_header("Retry-After", f"{fault.retry_after:g}")
        if fault.retry_after_ms is not None:
            self.send_header("retry-after-ms", f"{fault.retry_after_ms:g}")
        for name, value in fault.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, **fields: Any) -> Any:
        fields.setdefault("turn", None)
        fields.setdefault("attempt", None)
        fields.setdefault("fault", None)
        headers = dict(self.headers.items())
        return self.server.journal.record(time=time.monotonic(), headers=headers, **fields)


def _envelope(request: dict, index: int) -> Envelope:
    model = request.get("model")
    return Envelope(
        id=f"chatcmpl-mock-{index}",
        created=int(time.time()),
        model=model if isinstance(model, str) else "mock-model",
    )
