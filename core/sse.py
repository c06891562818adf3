"""Incremental decoder for `text/event-stream` (SSE), following the WHATWG parsing rules.

Theory of operation
-------------------
Bytes arrive in arbitrary chunks: a chunk may end inside a multi-byte UTF-8 character, inside a
line, or between the `\\r` and `\\n` of a CRLF. The decoder keeps three small pieces of state
between feeds and never loops over single bytes:

1. An incremental UTF-8 decoder (`errors="replace"`, as WHATWG says) holds the bytes of a
   character cut at the chunk's end. Line terminators are ASCII, so decoding before splitting is
   safe.
2. `_tail` holds the text of the last, unterminated line, in the pieces it arrived in (an event
   of a megabyte read 64 KiB at a time is joined once, not once a read). Each feed normalises
   line endings (`\\r\\n` and lone `\\r` become `\\n`, with `str.replace`, only when a `\\r` is
   present). Text without a newline joins the tail; other text, the tail joined before it, is
   split on `\\n`, and its last piece is the new tail.
3. `_cr_pending` remembers that the text ended with `\\r`. That `\\r` already ended its line; if
   the next chunk starts with `\\n`, that `\\n` is the second half of the same CRLF and is dropped,
   so no phantom blank line (and no early dispatch) appears.

Complete lines are interpreted per field: `data` lines accumulate (joined with `\\n`), `event`
sets the type of the frame being built, `id` sets the last event id (which, as in browsers,
persists across frames until changed), `retry` records a reconnection delay, lines starting with
`:` are comments, and a single space after the colon is stripped. A blank line dispatches the
frame if it has at least one `data` line; otherwise it just resets the frame. The usual frame,
one `data: ` line and its blank line with no field pending before it, is taken whole: the text
is split on blank lines first, and only other blocks go through the line rules.

At EOF, `close()` drops whatever has not been dispatched (WHATWG: pending data is discarded) and
sets `truncated` when something was buffered: a partial line, or fields without their blank line.
The stream reader counts that as a break. `parse_event` turns a frame's data into a dict, or
None for data that is not a JSON object (the caller counts those).
"""

from __future__ import annotations

import codecs
from typing import Any, NamedTuple

from core import jsonfast

__all__ = ["SseDecoder", "SseFrame", "parse_event"]

_BOM = "\ufeff"


class SseFrame(NamedTuple):
    """One dispatched SSE event: its joined data, its `event` type and the last event id. (A
    named tuple: one is built per event, and it builds faster than a frozen dataclass.)"""

    data: str
    event: str | None = None
    id: str | None = None


class SseDecoder:
    """Turns chunks of an event stream into `SseFrame`s; one decoder per connection."""

    __slots__ = (
        "_bytes",
        "_closed",
        "_cr_pending",
        "_data",
        "_dirty",
        "_event",
        "_last_id",
        "_started",
        "_tail",
        "_truncated",
        "retry",
    )

    def __init__(self) -> None:
        self._bytes = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._tail: list[str] = []  # the unterminated line, in the pieces it came in
        self._cr_pending = False
        self._started = False
        self._closed = False
        self._truncated = False
        self._data: list[str] = []
        self._event: str | None = None
        self._dirty = False  # a field line was seen since the last blank line
        self._last_id: str | None = None
        self.retry: int | None = None  # last `retry:` value in milliseconds, if any

    @property
    def truncated(self) -> bool:
        """True if `close()` found buffered content that was never dispatched."""
        return self._truncated

    def feed(self, chunk: bytes) -> list[SseFrame]:
        """Decode one chunk; return the frames it completed, in order."""
        if self._closed:
            raise ValueError("SseDecoder.feed() called after close()")
        text = self._bytes.decode(chunk)
        if not text:
            return []
        if not self._started:
            self._started = True
            if text[0] == _BOM:
                text = text[1:]
        return self._feed_text(text)

    def close(self) -> list[SseFrame]:
        """Signal EOF: drop any unterminated frame (recording it in `truncated`); return []."""
        if self._closed:
            return []
        self._closed = True
        rest = self._bytes.decode(b"", final=True)
        self._truncated = bool(self._tail or rest or self._dirty)
        self._tail = []
        self._data = []
        self._event = None
        return []

    def _feed_text(self, text: str) -> list[SseFrame]:
        """Split decoded text into complete lines and interpret them."""
        if self._cr_pending and text[0] == "\n":
            text = text[1:]
        self._cr_pending = False
        if "\r" in text:
            self._cr_pending = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\n" not in text:  # inside a line: keep the piece, join the line once it ends
            if text:
                self._tail.append(text)
            return []
        if self._tail:  # the pieces go as soon as they are joined: a long line is held once
            self._tail.append(text)
            text, self._tail = "".join(self._tail), []
        if "\n\n" not in text:
            lines = text.split("\n")
            self._tail = _rest(lines.pop())
            return self._interpret(lines)
        blocks = text.split("\n\n")
        text = ""  # nor kept while its frames are cut out of the blocks
        lines = blocks.pop().split("\n")  # what follows the last blank line
        self._tail = _rest(lines.pop())
        frames = self._blocks(blocks)
        if lines:
            frames.extend(self._interpret(lines))
        return frames

    def _blocks(self, blocks: list[str]) -> list[SseFrame]:
        """Frames from blocks each followed by a blank line. A block that is one `data: `
        line after a blank line (what opencode writes) is a frame as it stands; any other is
        interpreted line by line, its blank line included."""
        frames: list[SseFrame] = []
        new = tuple.__new__  # SseFrame's own __new__ is a Python function: 3x slower
        for block in blocks:
            if not self._dirty and block.startswith("data: ") and "\n" not in block:
                frames.append(new(SseFrame, (block[6:], None, self._last_id)))
            else:
                frames.extend(self._interpret([*block.split("\n"), ""]))
        return frames

    def _interpret(self, lines: list[str]) -> list[SseFrame]:
        """Apply the WHATWG field rules to complete lines; dispatch on blank lines."""
        frames: list[SseFrame] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    frames.append(SseFrame("\n".join(data), self._event, self._last_id))
                    data.clear()
                self._event = None
                self._dirty = False
            elif line.startswith("data:"):
                data.append(line[6:] if line.startswith(" ", 5) else line[5:])
                self._dirty = True
            elif line[0] != ":":
                self._field(line)
        return frames

    def _field(self, line: str) -> None:
        """Handle a non-data, non-comment field line (`event`, `id`, `retry`, or ignored)."""
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        self._dirty = True
        if name == "data":  # `data` with no colon: an empty data line
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)


def _rest(line: str) -> list[str]:
    """An unterminated line as the tail's pieces."""
    return [line] if line else []


def parse_event(frame: SseFrame) -> dict[str, Any] | None:
    """Decode a frame's data as a JSON object; None (never an exception) if it is not one."""
    try:
        value = jsonfast.loads(frame.data)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
