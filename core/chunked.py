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

import re

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)
MAX_SIZE_LINE = 4096  # a size line longer than this is not HTTP
_CR_LF = b"\r\n"
_HEX = frozenset(b"0123456789abcdefABCDEF")  # int(x, 16) also takes 0x, _ and +: HTTP does not
# The usual size line, hexadecimal digits and CRLF; anything else (extensions, a line split
# across reads, malformed) takes the careful path.
_SIZE_LINE = re.compile(rb"([0-9a-fA-F]{1,16})\r\n")


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
        if self._line:  # a line split across reads: complete it (it holds no newline)
            data, self._line = self._line + data, b""
        out: list[bytes] = []
        at, size = 0, len(data)
        while at < size:
            state = self._state
            if state == _SIZE:
                at = _whole_chunks(data, at, out)
                if at >= size:
                    break
            if state == _DATA:
                end = at + self._left
                out.append(data[at:end])
                if end > size:
                    self._left = end - size
                    break
                self._left = 0
                if data.startswith(b"\r\n", end):  # the usual CRLF after the data
                    at = end + 2
                    self._state = _SIZE
                else:
                    at = end
                    self._state = _DATA_END
            elif state == _SIZE and (line := _SIZE_LINE.match(data, at)) is not None:
                left = int(line[1], 16)
                at = line.end()
                self._left = left
                self._state = _DATA if left else _TRAILER
            elif state == _DONE:
                break
            else:
                at = self._line_step(data, at, state)
        return b"".join(out)

    def _line_step(self, data: bytes, at: int, state: int) -> int:
        """Consume one line (size, CRLF after data, trailer); the new offset."""
        end = data.find(b"\n", at)
        if end < 0:
            self._line = data[at:]
            if len(self._line) > MAX_SIZE_LINE:
                raise ChunkedError("chunk size line too long")
            return len(data)
        if state == _DATA_END and end - at <= 1 and data[at] in _CR_LF:  # the usual CRLF
            self._state = _SIZE
        else:
            self._on_line(data[at:end].rstrip(b"\r"))
        return end + 1

    def _on_line(self, line: bytes) -> None:
        if self._state == _DATA_END:
            if line:
                raise ChunkedError("chunk data not followed by CRLF")
            self._state = _SIZE
        elif self._state == _SIZE:
            digits = line.split(b";", 1)[0].strip()
            if not digits or not _HEX.issuperset(digits):
                raise ChunkedError(f"bad chunk size line {line[:40]!r}")
            self._left = int(digits, 16)
            self._state = _DATA if self._left else _TRAILER
        elif not line:  # _TRAILER: a blank line ends the message
            self._state = _DONE


def _whole_chunks(data: bytes, at: int, out: list[bytes]) -> int:
    """Take the chunks that lie whole in `data` from `at` (usual size line, data, CRLF; not the
    last chunk), appending their data to `out`; the offset after them. The usual case, in one
    tight loop: the state machine takes over at whatever this leaves."""
    match = _SIZE_LINE.match
    while (line := match(data, at)) is not None:
        start = line.end()
        end = start + int(line[1], 16)
        if end == start or not data.startswith(b"\r\n", end):
            break
        out.append(data[start:end])
        at = end + 2
    return at
