"""Where SSE frames end in a byte stream that arrives in arbitrary chunks.

A frame ends at the newline that closes an empty line, provided the frame had at least one
non-empty line (extra blank lines dispatch nothing, as in the SSE spec). `\r` is ignored, so
`\r\n` line endings count too. The counter carries the current line across chunk boundaries,
so a separator split between two reads is still found. Pure: no IO, no clock.
"""

from __future__ import annotations


class FrameCounter:
    """Reports the offsets just past each complete SSE frame in every chunk fed to it."""

    def __init__(self) -> None:
        self._line = 0  # content bytes seen so far on the current line
        self._pending = False  # the current frame has a non-empty line

    def feed(self, chunk: bytes) -> list[int]:
        """Offsets in `chunk` just past each frame that completes inside it."""
        ends: list[int] = []
        pos = 0
        while (newline := chunk.find(b"\n", pos)) >= 0:
            self._line += _content(chunk[pos:newline])
            if self._line:
                self._pending = True
            elif self._pending:
                ends.append(newline + 1)
                self._pending = False
            self._line = 0
            pos = newline + 1
        self._line += _content(chunk[pos:])
        return ends

    @property
    def inside(self) -> bool:
        """True when the bytes fed so far end inside a frame."""
        return bool(self._line or self._pending)


class HeartbeatsOnly:
    """What a muted stream relays: the rest of the frame in flight when it was muted, then only
    complete heartbeat frames: 1.x's `server.heartbeat` events, 2.x's comments (a stream alive
    but silent, as in opencode #46733)."""

    def __init__(self, inside: bool) -> None:
        self._finish = inside  # a frame was half relayed: send its rest first
        self._held = b""  # the start of a frame not complete yet

    def feed(self, chunk: bytes, ends: list[int]) -> bytes:
        """The bytes of `chunk` to relay; `ends` are its frame ends (`FrameCounter.feed`)."""
        out = []
        start = 0
        if self._finish:
            if not ends:
                return chunk
            out.append(chunk[: ends[0]])
            start, ends, self._finish = ends[0], ends[1:], False
        for end in ends:
            frame = self._held + chunk[start:end]
            if b'"server.heartbeat"' in frame or _comment(frame):
                out.append(frame)
            self._held = b""
            start = end
        self._held += chunk[start:]
        return b"".join(out)


def _comment(frame: bytes) -> bool:
    """True for a frame of comment lines only (`: heartbeat`, opencode 2.x)."""
    lines = [line for line in frame.replace(b"\r", b"").split(b"\n") if line]
    return bool(lines) and all(line.startswith(b":") for line in lines)


def _content(segment: bytes) -> int:
    return len(segment) - segment.count(b"\r")
