"""Terminal view model: turns tracker effects and runner records into lines to print.

Theory of operation
-------------------
Every public method of `TerminalView` returns `Out` values: `Write` (inline text, no newline:
the streamed deltas) and `Line` (a whole line). Styles are names; the renderer maps them to
colours and plain output ignores them. Tracker effects go to `effect`/`effects`, which dispatch
on their type (`_EFFECTS`). Runner records and stream messages live in `messages`, which this
pure layer does not import: each has a method of its own (`banner`, `notice`, `verdict`, ...)
that reads it by attribute, and the renderer actor maps message types to those methods.

Streaming. At most one text or reasoning part streams inline at a time: the first part to get
a delta while none streams owns the line, deltas of other parts wait for their final text.
When the owner is final, what was written is compared with the final text: a prefix gets the
remainder written and the line ended; a divergence ends the line and prints a dim "(resynced)"
line and the full text. A part nothing was streamed for is printed whole. A `gapped` delta (the
stream may have lost deltas before it) is never written: the owner writes no more until its
final text completes the line, and a part that does not own the line is printed whole when
final. So a cut stream shows each part once and whole, then one dim line saying the text was
recovered. Any `Line` first ends an open inline line (`_col0` is False while one is open); later
deltas of the owner continue on a fresh line. Parts of child sessions (subagents, indented two
spaces per level) and every part in prefix mode (parallel phases) are printed only when final.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from core import _view_records as records
from core._chunks import Chunks
from core._tracker_effects import (
    ChildSession,
    PartDelta,
    PartFinalized,
    Passthrough,
    PermissionAsked,
    QuestionAsked,
    SessionError,
    StatusChanged,
    Unknown,
)
from core._view_tools import compact, tool_lines

__all__ = ["Line", "Out", "TerminalView", "Write"]

_SILENT_PARTS = frozenset(
    {"step-start", "patch", "file", "agent", "subtask", "snapshot", "compaction", "retry"}
)
_PAYLOAD_WIDTH = 500
THINKING = "thinking: "
RECOVERED = "· text recovered after a gap in the stream"


@dataclass(frozen=True, slots=True)
class Write:
    """Inline text, written as is (no newline added)."""

    text: str
    style: str = "text"


@dataclass(frozen=True, slots=True)
class Line:
    """One whole line (the printer adds the newline)."""

    text: str
    style: str = "text"


Out = Write | Line


class _Stream:
    """The part currently streaming inline and what was written of it."""

    __slots__ = ("part_id", "style", "written")

    def __init__(self, part_id: str, style: str) -> None:
        self.part_id = part_id
        self.style = style
        self.written = Chunks()


class TerminalView:
    """What a person sees of a phase, as a pure function of the items fed in."""

    def __init__(
        self, *, thinking: bool = False, verbose: bool = False, prefix: str | None = None
    ) -> None:
        self.thinking = thinking
        self.verbose = verbose
        self.prefix = prefix
        self._lead = f"[{prefix}] " if prefix else ""
        self._depth: dict[str, int] = {}  # child session id -> nesting level (root absent: 0)
        self._stream: _Stream | None = None
        self._col0 = True  # no inline line is open
        self._directory: str | None = None
        self._spent = records.Spent()

    def effect(self, effect: Any, now_ms: int) -> list[Out]:
        """The output for one tracker effect (nothing for types the view does not show)."""
        handler = _EFFECTS.get(type(effect))
        return handler(self, effect, now_ms) if handler else []

    def effects(self, effects: Iterable[Any], now_ms: int) -> list[Out]:
        """The output for a batch of tracker effects, in order."""
        return [out for effect in effects for out in self.effect(effect, now_ms)]

    def flush(self) -> list[Out]:
        """End an open inline line, if any."""
        if self._col0:
            return []
        self._col0 = True
        return [Write("\n", self._stream.style if self._stream else "text")]

    # -- helpers ---------------------------------------------------------------------------------

    def _lines(self, styled: list[tuple[str, str]], session_id: str | None = None) -> list[Out]:
        """`Line`s with prefix and indentation, after ending an open inline line."""
        indent = "  " * self._depth.get(session_id or "", 0)
        return [
            *self.flush(),
            *(Line(f"{self._lead}{indent}{text}", style) for text, style in styled),
        ]

    def _dim(self, text: str, payload: Any = None) -> list[Out]:
        """One dim line; the compact payload is appended in verbose mode."""
        if self.verbose and payload is not None:
            text = f"{text} {compact(payload, _PAYLOAD_WIDTH)}"
        return self._lines([(text, "dim")])

    def _text_lines(self, effect: PartFinalized, text: str, style: str) -> list[Out]:
        """A whole text or reasoning part, one `Line` per line of text."""
        if not text.strip():
            return []
        label = THINKING if effect.part_type == "reasoning" else ""
        rows = text.strip("\n").split("\n")
        styled = [(label + rows[0], style), *((row, style) for row in rows[1:])]
        return self._lines(styled, effect.session_id)

    # -- parts -----------------------------------------------------------------------------------

    def _on_delta(self, effect: PartDelta, _now_ms: int) -> list[Out]:
        """Stream a delta inline if its part owns (or may take) the inline line."""
        kind = effect.part_type
        if kind not in ("text", "reasoning") or (kind == "reasoning" and not self.thinking):
            return []
        if self.prefix or self._depth.get(effect.session_id) or not effect.delta:
            return []
        if effect.gapped:  # not a prefix to trust: the final text is written instead
            return []
        out: list[Out] = []
        if self._stream is None:
            self._stream = _Stream(effect.part_id, kind)
            out = self.flush()
            if kind == "reasoning":
                out.append(Write(THINKING, kind))
        elif self._stream.part_id != effect.part_id:
            return []
        self._stream.written.add(effect.delta)
        self._col0 = effect.delta.endswith("\n")
        out.append(Write(effect.delta, kind))
        return out

    def _on_part(self, effect: PartFinalized, _now_ms: int) -> list[Out]:
        """A final part: text, reasoning, tool, step end, or an unknown part type."""
        kind = effect.part_type
        if effect.role == "user" or kind in _SILENT_PARTS:
            return []
        if kind in ("text", "reasoning"):
            return self._on_text(effect)
        if kind == "tool":
            return self._lines(tool_lines(effect.part, self._directory), effect.session_id)
        if kind == "step-finish":
            shown = records.step_finish(effect.part, self._spent.add(effect.part))
            return self._lines(shown, effect.session_id)
        return self._dim(f"· unknown part {kind}", effect.part)

    def _on_text(self, effect: PartFinalized) -> list[Out]:
        """The end of a text or reasoning part: finish its inline line or print it whole."""
        kind = effect.part_type
        if kind == "reasoning" and not self.thinking:
            return []
        out = self._text_end(effect, effect.text or "", kind)
        if effect.recovered and out:
            out += self._lines([(RECOVERED, "dim")], effect.session_id)
        return out

    def _text_end(self, effect: PartFinalized, text: str, kind: str) -> list[Out]:
        stream = self._stream
        if stream is None or stream.part_id != effect.part_id:
            return self._text_lines(effect, text, kind)
        self._stream = None
        written = stream.written.text()
        if not text.startswith(written):
            resynced = self._lines([("(resynced)", "dim")], effect.session_id)
            return resynced + self._text_lines(effect, text, kind)
        rest = text[len(written) :]
        out: list[Out] = []
        if rest:
            out.append(Write(rest, kind))
            self._col0 = rest.endswith("\n")
        if not self._col0:
            out.append(Write("\n", kind))
        self._col0 = True
        return out

    # -- session events --------------------------------------------------------------------------

    def _on_child(self, effect: ChildSession, _now_ms: int) -> list[Out]:
        """A subagent's session joined the tree: indent its parts one level deeper."""
        self._depth[effect.session_id] = self._depth.get(effect.parent_id, 0) + 1
        title = effect.info.get("title") or effect.session_id
        return self._lines([(f"↳ subagent started: {title}", "step")], effect.session_id)

    def _on_status(self, effect: StatusChanged, now_ms: int) -> list[Out]:
        """Only provider retries are shown; busy and idle are not news."""
        if effect.status.get("type") != "retry":
            return []
        return self._lines(records.retry(effect.status, now_ms), effect.session_id)

    def _on_error(self, effect: SessionError, _now_ms: int) -> list[Out]:
        """A session error, as an error line."""
        return self._lines(records.session_error(effect.error), effect.session_id)

    def _on_unknown(self, effect: Unknown, _now_ms: int) -> list[Out]:
        """An event the tracker does not know: one dim line (payload when verbose)."""
        return self._dim(f"· unknown event {effect.event_type or '(no type)'}", effect.event)

    def _on_passthrough(self, effect: Passthrough, _now_ms: int) -> list[Out]:
        """Known events without a view of their own: a dim line in verbose mode only."""
        if not self.verbose or effect.event_type == "todo.updated":
            return []
        return self._dim(f"· {effect.event_type}")

    def _on_asked(self, effect: PermissionAsked | QuestionAsked, _now_ms: int) -> list[Out]:
        """Permission and question requests: their answers are shown; the ask only if verbose."""
        if not self.verbose:
            return []
        kind = "permission" if isinstance(effect, PermissionAsked) else "question"
        return self._dim(f"· {kind} asked", effect.request)

    # -- runner records and stream messages (read by attribute: `messages` is out of reach) ------

    def banner(self, item: Any) -> list[Out]:
        """PhaseStarted: the banner; the directory is kept to shorten paths in tool lines."""
        self._directory = item.directory
        return self._lines(records.banner(item))

    def attempt(self, item: Any) -> list[Out]:
        """AttemptStarted: the attempt line and its clipped prompt."""
        return self._lines(records.attempt(item))

    def prompt_sent(self, item: Any) -> list[Out]:
        """PromptSent: the prompt was accepted, only worth a line in verbose mode."""
        return self._dim(f"· prompt {item.number} sent") if self.verbose else []

    def resynced(self, item: Any) -> list[Out]:
        """Resynced: dim when it recovered parts, a warning when it failed."""
        if item.error:
            return self._lines([(f"⚠ resync after {item.reason} failed: {item.error}", "warning")])
        if item.recovered > 0 or self.verbose:
            return self._dim(f"· resync after {item.reason}: recovered {item.recovered} parts")
        return []

    def permission(self, item: Any) -> list[Out]:
        """PermissionAnswered: a warning, indented like the asking session."""
        return self._lines(records.permission(item), item.session_id)

    def question(self, item: Any) -> list[Out]:
        """QuestionRejected: a warning, indented like the asking session."""
        return self._lines(records.question(item), item.session_id)

    def notice(self, item: Any) -> list[Out]:
        """Notice: a runner notice, styled by level."""
        return self._lines(records.notice(item))

    def connected(self, item: Any) -> list[Out]:
        """StreamConnected: a reconnect is worth a dim line, the first one only if verbose."""
        if item.is_reconnect:
            return self._dim(f"· stream reconnected (connection {item.connection})")
        return self._dim("· stream connected") if self.verbose else []

    def dropped(self, item: Any) -> list[Out]:
        """StreamDropped: a dim line with the reason and the wait before the retry."""
        return self._lines(records.dropped(item))

    def stream_failed(self, item: Any) -> list[Out]:
        """StreamFailed: an error line; the verdict follows."""
        return self._lines(records.stream_failed(item))

    def verdict(self, item: Any) -> list[Out]:
        """VerdictReached: the verdict block."""
        return self._lines(records.verdict(item))


# Effect type -> handler. Types not listed (MessageUpdated, SessionIdle) are not news.
_EFFECTS: dict[type, Callable[[TerminalView, Any, int], list[Out]]] = {
    PartDelta: TerminalView._on_delta,
    PartFinalized: TerminalView._on_part,
    ChildSession: TerminalView._on_child,
    StatusChanged: TerminalView._on_status,
    SessionError: TerminalView._on_error,
    Unknown: TerminalView._on_unknown,
    Passthrough: TerminalView._on_passthrough,
    PermissionAsked: TerminalView._on_asked,
    QuestionAsked: TerminalView._on_asked,
}
