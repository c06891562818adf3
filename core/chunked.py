"""HTTP/1.1 chunked transfer decoding, incremental (pure).

Theory of operation. opencode sends `/event` with `Transfer-Encoding: chunked`, one chunk per
event. Read through http.client, every read returns one chunk, so every read is a batch of
one event. The SSE reader reads the connection's buffered bytes itself instead, as many as
arrived, and this decoder takes the chunk framing off them: `feed(data)` returns the payload
bytes `data` completes, whatever the splits (inside a size line, a chunk, a CRLF), and `done`
turns true at the last chunk (size 0). Extensions after the size are ignored; trailers are
skipped. A size line that is not hexadecimal raises `ChunkedError`: the stream is broken.
"""

from __future__ import annotations

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)
MAX_SIZE_LINE = 4096  # a size line longer than this is not HTTP


class ChunkedError(ValueError):
    """The bytes are not chunked transfer encoding."""


class Dechunker:
    """Feeds chunked bytes in, gets the payload out."""

    __slots__ = ("_left", "_line", "_state")

    def __init__(self) -> None:
        self._state = _SIZE
        self._line = b""
        self._left = 0

    @property
    def done(self) -> bool:
        """True once the last chunk (and its trailers) arrived."""
        return self._state == _DONE

    def feed(self, data: bytes) -> bytes:
        """The payload bytes in `data` (possibly empty)."""
        out: list[bytes] = []
        view, at, size = memoryview(data), 0, len(data)
        while at < size and self._state != _DONE:
            if self._state == _DATA:
                take = min(self._left, size - at)
                out.append(bytes(view[at : at + take]))
                at += take
                self._left -= take
                if not self._left:
                    self._state = _DATA_END
            else:
                at = self._line_step(data, at)
        return b"".join(out)

    def _line_step(self, data: bytes, at: int) -> int:
        """Consume up to the end of a line (size, CRLF after data, trailer); the new offset."""
        end = data.find(b"\n", at)
        if end < 0:
            self._line += data[at:]
            if len(self._line) > MAX_SIZE_LINE:
                raise ChunkedError("chunk size line too long")
            return len(data)
        line, self._line = (self._line + data[at:end]).rstrip(b"\r"), b""
        self._on_line(line)
        return end + 1

    def _on_line(self, line: bytes) -> None:
        if self._state == _DATA_END:
            if line:
                raise ChunkedError("chunk data not followed by CRLF")
            self._state = _SIZE
        elif self._state == _SIZE:
            try:
                self._left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise ChunkedError(f"bad chunk size line {line[:40]!r}") from exc
            self._state = _DATA if self._left else _TRAILER
        elif not line:  # _TRAILER: a blank line ends the message
            self._state = _DONE
