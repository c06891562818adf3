"""RendererActor: what a person (or a program, with `--json`) reads of a phase.

The pure `TerminalView` decides what to show (`SHOW` routes messages to it); this actor prints:
through a rich Console in `rich` mode, as bare text (no escape codes) in `plain` mode, and as
NDJSON lines in `json` mode (`core.ndjson`: `opencode run --format json` shapes plus one
`runner.result`). Every message is handled at once and `out` flushed: no sleeping, no blocking.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO

from actors._supervised import Report, SupervisedActor
from actors.logs import logger
from core.ndjson import dumps_line, result_line, run_json
from core.redact import StreamRedactor
from core.view import Line, Out, TerminalView, Write
from messages.pipeline import Tracked
from messages.records import (
    AttemptStarted,
    Notice,
    PermissionAnswered,
    PhaseStarted,
    PromptSent,
    QuestionRejected,
    Resynced,
    VerdictReached,
)
from messages.stream import StreamConnected, StreamDropped, StreamFailed

Mode = Literal["rich", "plain", "json"]
MODES = ("rich", "plain", "json")

# View style names -> rich styles; names not listed print unstyled.
RICH_STYLES = {
    "text": "",
    "reasoning": "dim italic",
    "tool": "cyan",
    "tool.ok": "cyan",
    "tool.error": "red",
    "step": "dim",
    "retry": "yellow",
    "warning": "bold yellow",
    "error": "bold red",
    "dim": "dim",
    "banner": "bold magenta",
    "verdict.ok": "bold green",
    "verdict.bad": "bold red",
}

# Escape sequences and control characters (tool output may carry colours): never printed as is.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI (colours, cursor moves)
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC (titles, links)
    r"|[\x00-\x08\x0b-\x1f\x7f]"  # other control characters, lone ESC and CR included
)


BACKLOG = 512  # batches waiting in the inbox shown with the one at hand, at most

# Message type -> the view's method (the view cannot import `messages`); `Tracked` -> `effects`.
SHOW: dict[type, Callable[[TerminalView, Any], list[Out]]] = {
    PhaseStarted: TerminalView.banner,
    AttemptStarted: TerminalView.attempt,
    PromptSent: TerminalView.prompt_sent,
    Resynced: TerminalView.resynced,
    PermissionAnswered: TerminalView.permission,
    QuestionRejected: TerminalView.question,
    Notice: TerminalView.notice,
    StreamConnected: TerminalView.connected,
    StreamDropped: TerminalView.dropped,
    StreamFailed: TerminalView.stream_failed,
    VerdictReached: TerminalView.verdict,
}


class RendererActor(SupervisedActor):
    """Prints tracked effects and runner records to `out` in one of three modes."""

    def __init__(
        self,
        *,
        mode: Mode,
        out: TextIO,
        thinking: bool = False,
        verbose: bool = False,
        prefix: str | None = None,
        live_status: bool = True,
        board: Any = None,
        redact: tuple[str, ...] = (),
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        report: Report | None = None,
    ) -> None:
        super().__init__(report=report)
        if mode not in MODES:
            raise ValueError(f"renderer mode must be one of {MODES}, got {mode!r}")
        self._mode = mode
        self._out = out
        self._thinking = thinking
        self._clock_ms = clock_ms
        self._view = TerminalView(thinking=thinking, verbose=verbose, prefix=prefix)
        self._console = rich_console(out) if mode == "rich" else None
        self._live: Any = None  # rich on a terminal: a status line under the scrollback
        self._board = board if mode == "rich" else None  # --parallel: a row of a shared table
        self._row: Any = None
        self._live_status = live_status and _live_fits(mode, out, prefix, verbose)
        self._redact = tuple(secret for secret in redact if secret)
        self._masker = StreamRedactor(self._redact)  # for JSON text, where secrets are escaped
        self._closed = False

    def on_receive(self, message: Any) -> None:
        """Render one message (a batch with those waiting behind it); anything unexpected is
        logged and skipped."""
        batches: list[Tracked] = []
        if isinstance(message, Tracked):
            batches = [message, *self.actor_inbox.take_more(Tracked, BACKLOG)]
            message = Tracked.joined(message, batches[1:])
        elif type(message) not in SHOW:
            logger.warning("renderer: unexpected message {!r}", message)
            return
        if not self._closed:
            self._render(message, batches)

    def flush(self) -> None:
        """End an open inline line (at stop)."""
        if self._mode != "json" and not self._closed:
            try:
                self._print(self._view.flush())
            except (OSError, ValueError):
                self._closed = True

    def on_start(self) -> None:
        """Rich on a terminal: open the live region (`actors.live`)."""
        if self._board is not None:
            self._row = self._board.row(self._view.prefix or "phase")
        elif self._live_status:
            from actors.live import LiveArea

            self._live = LiveArea(self._console, self._clock_ms)

    def on_stop(self) -> None:
        """Leave the terminal at the start of a line (and clear the live region)."""
        self.flush()
        if self._live is not None:
            try:
                self._live.stop()
            except (OSError, ValueError) as exc:  # the terminal went away
                logger.debug("renderer: live region not cleared ({})", exc)
        super().on_stop()

    def _render(self, message: Any, batches: list[Tracked]) -> None:
        """Print a known message (a joined batch: its `batches` each at its own time); failing
        output never stops the actor (nor decides a verdict)."""
        try:
            if self._mode == "json":
                self._json(message, batches)
            elif self._board is not None:
                self._on_board(message)
            elif isinstance(message, Tracked):
                effects = self._view.effects
                self._print([out for b in batches for out in effects(b.effects, self._time(b))])
            else:
                self._print(SHOW[type(message)](self._view, message))
            if self._live is not None:  # redrawn by its own refresh, 4 times a second
                _observe(self._live.status, message, self._clock_ms())
        except (BrokenPipeError, ValueError, OSError) as exc:
            self._closed = True
            logger.warning("renderer: output closed ({}); nothing more is printed", exc)
        except Exception:
            logger.exception("renderer: could not show {}", type(message).__name__)

    def _on_board(self, message: Any) -> None:
        """`--parallel` on a terminal: the phase's row; only its verdict is printed."""
        _observe(self._row, message, self._clock_ms())
        if isinstance(message, VerdictReached):  # one print: the blocks of two phases never mix
            from rich.text import Text

            lines = [_styled(out) for out in SHOW[VerdictReached](self._view, message)]
            self._board.print(Text("\n").join(lines))

    def _time(self, batch: Tracked) -> int:
        """When the batch happened: the tracker's stamp (which the transcript keeps)."""
        return batch.time_ms or self._clock_ms()

    def _json(self, message: Any, batches: list[Tracked]) -> None:
        """NDJSON lines: run-format objects of batches, the closing `runner.result`, or none."""
        objects: list[dict[str, Any]] = []
        if isinstance(message, VerdictReached):
            head = {"verdict": message.verdict, "reason": message.reason}
            objects = [result_line({**head, "exit_code": message.exit_code, **message.summary})]
            if message.summary.get("structured") is not None:  # `output_schema`: the result
                structured = message.summary["structured"]
                objects.insert(0, {"type": "runner.structured", "structured": structured})
        elif isinstance(message, Tracked):
            root = message.root_session_id
            found = (
                run_json(e, now_ms=self._time(b), thinking=self._thinking, root_session_id=root)
                for b in batches
                for e in b.effects
            )
            objects = [obj for obj in found if obj is not None]
        if objects:
            text = "".join(map(dumps_line, objects))  # one object: that line itself
            self._out.write(self._masker.frame(text))
            self._out.flush()

    def _print(self, outs: list[Out]) -> None:
        """Print view output: styled through rich, or bare text in plain mode."""
        if not outs:
            return
        if self._redact:
            outs = [type(out)(_redacted(out.text, self._redact), out.style) for out in outs]
        if self._console is None:
            self._out.write("".join(_plain(out) for out in outs))
        else:
            _print_rich(self._console, outs, self._live)
        self._out.flush()


def _redacted(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret (the server password, were a tool to print it) masked."""
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text


def _clean(text: str) -> str:
    """`text` without escape sequences or control characters (newlines and tabs stay)."""
    return _CONTROL.sub("", text) if not text.isprintable() else text


def _plain(out: Out) -> str:
    return _clean(out.text) + "\n" if isinstance(out, Line) else _clean(out.text)


def rich_console(out: TextIO) -> Any:
    """A Console writing to `out`, colours forced, no highlighting or wrapping."""
    from rich.console import Console

    return Console(file=out, force_terminal=True, highlight=False, soft_wrap=True)


def _live_fits(mode: str, out: TextIO, prefix: str | None, verbose: bool) -> bool:
    """Can a live region sit on this output? Rich on a terminal; not for one of several phases
    (a prefix: they share the terminal), nor under --verbose (log lines would be drawn over)."""
    terminal = getattr(out, "isatty", lambda: False)()
    return mode == "rich" and terminal and prefix is None and not verbose


def _observe(status: Any, message: Any, now_ms: int) -> None:
    """Tell a status line (`core.status.LiveStatus`) what the message means."""
    if isinstance(message, Tracked):
        status.observe(message.effects, message.raw)
    elif isinstance(message, AttemptStarted):
        status.attempt_started(message.number)
    elif isinstance(message, PermissionAnswered):
        status.permission_answered()
    elif isinstance(message, VerdictReached):
        status.finished(message.verdict, now_ms)


def _styled(out: Out) -> Any:
    """A view output as rich Text (cleaned, styled, never markup)."""
    from rich.text import Text

    return Text(_clean(out.text), style=RICH_STYLES.get(out.style, ""))


def _print_rich(console: Any, outs: list[Out], live: Any = None) -> None:
    """Print `outs` as rich Text (never markup: agent text may contain brackets); through the
    live region when there is one."""
    from rich.text import Text

    for out in outs:
        if live is not None:
            (live.write if isinstance(out, Write) else live.line)(_styled(out))
            continue
        end = "" if isinstance(out, Write) else "\n"
        console.print(Text(_clean(out.text), style=RICH_STYLES.get(out.style, "")), end=end)
