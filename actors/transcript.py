"""The transcript: JSONL of the session tree's raw events and the runner's own records.

The first line is a header (runner and opencode versions, phase, session id); then one line
per raw SSE event of the session tree, as received, and one `runner.<record>` line per
lifecycle record (attempt started, prompt sent, reconnect, gap, resync with what it recovered,
permission answered, verdict). A `runner.clock` line (`ms`: the tracker's stamp) comes before
the events of a batch that had effects, when the time moved on: `show` gives them that time.
Every line is flushed as it is written, so a killed runner leaves a readable file.
The `TranscriptActor` alone owns the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Iterable
from typing import Any, TextIO

from actors._supervised import Report, SupervisedActor
from actors.logs import logger
from core import jsonfast
from core.opencode_versions import capabilities
from core.redact import StreamRedactor
from messages.pipeline import Tracked
from messages.records import PhaseStarted

RUNNER_VERSION = "0.1.0"
_ENCODE = jsonfast.compact
BACKLOG = 512  # batches waiting in the inbox written with the one at hand, at most


class TranscriptWriter:
    """Appends JSON lines to one file, flushing each."""

    def __init__(self, path: str, *, redact: tuple[str, ...] = ()) -> None:
        self.path = path
        self._masker = StreamRedactor(redact)
        self._clock_ms = 0  # the last `runner.clock` written
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._file: TextIO | None = open(path, "w", encoding="utf-8")  # noqa: SIM115

    def write(self, line: dict[str, Any]) -> None:
        """One JSON object, one line, flushed."""
        self.write_many((line,))

    def write_many(self, lines: Iterable[dict[str, Any]]) -> None:
        """JSON objects, one a line, flushed together (whole lines only, so a killed runner
        leaves a readable file)."""
        self.write_texts(_ENCODE(line) for line in lines)

    def write_events(self, events: tuple[dict[str, Any], ...], texts: tuple[str, ...]) -> None:
        """The stream's events, each as received when its text was kept and is one line (a frame
        of several `data:` lines is not), else encoded again."""
        if events:
            self._write(*_events_texts(events, texts))

    def write_batches(self, batches: Iterable[Tracked]) -> None:
        """Batches of the stream, each after a `runner.clock` line when its time moved on and
        it had effects (the time `show` gives them), flushed together."""
        texts: list[str] = []
        for batch in batches:
            if batch.effects and batch.time_ms and batch.time_ms != self._clock_ms:
                self._clock_ms = batch.time_ms
                texts.append(_ENCODE({"type": "runner.clock", "ms": batch.time_ms}) + "\n")
            texts.extend(_events_texts(batch.raw, batch.raw_json) if batch.raw else ())
        if texts:
            self._write(*texts)

    def write_texts(self, texts: Iterable[str]) -> None:
        """JSON texts as they are (the stream's events as received), one a line, flushed."""
        self._write("".join(line + "\n" for line in texts))

    def _write(self, *texts: str) -> None:
        """Write `texts` one after the other (not joined: a large event is not copied again to
        end its line), then flush."""
        if self._file is None:
            return
        for text in texts:
            self._file.write(self._masker.frame(text))  # were a tool to print the password
        self._file.flush()

    def header(self, fields: dict[str, Any]) -> None:
        """The first line."""
        self.write({"type": "runner.header", "runner_version": RUNNER_VERSION, **fields})

    def record(self, message: Any) -> None:
        """A runner message as a `runner.<snake_name>` line."""
        body = dataclasses.asdict(message) if dataclasses.is_dataclass(message) else {}
        self.write({"type": record_type(message), "time": time.time(), **body})

    def close(self) -> None:
        """Close the file (later writes are dropped)."""
        if self._file is not None:
            self._file.close()
            self._file = None


class TranscriptActor(SupervisedActor):
    """Owns the transcript file: opens it at start, writes what the phase reports as it
    arrives, closes it at stop. The header is written with the first message, completed by the
    banner (`PhaseStarted`: session and server version) when the phase got that far."""

    def __init__(
        self,
        *,
        path: str,
        header: dict[str, Any],
        redact: tuple[str, ...] = (),
        report: Report | None = None,
    ) -> None:
        super().__init__(report=report)
        self._path = path
        self._header: dict[str, Any] | None = {"session_id": None, **header}
        self._redact = redact
        self._writer: TranscriptWriter | None = None

    def on_start(self) -> None:
        """Open (and truncate) the file."""
        try:
            self._writer = TranscriptWriter(self._path, redact=self._redact)
        except OSError as exc:
            logger.error("cannot write the transcript {}: {}", self._path, exc.strerror)

    def on_receive(self, message: Any) -> None:
        """Raw events of `Tracked` batches verbatim; any other dataclass as a record."""
        if self._writer is None:
            return
        if self._header is not None:
            self._write_header(message)
        match message:
            case Tracked():
                more = self.actor_inbox.take_more(Tracked, BACKLOG)
                self._writer.write_batches((message, *more))
            case _ if dataclasses.is_dataclass(message):
                self._writer.record(message)
            case _:
                logger.warning("TranscriptActor ignored unexpected message {!r}", message)

    def on_stop(self) -> None:
        """Close the file: nothing is written after the actor."""
        if self._writer is not None:
            self._writer.close()
        super().on_stop()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Close the file even when a write raised."""
        if self._writer is not None:
            self._writer.close()
        super().on_failure(exception_type, exception_value, traceback)

    def _write_header(self, first: Any) -> None:
        header, self._header = self._header or {}, None
        if isinstance(first, PhaseStarted):
            header.update(
                session_id=first.session_id,
                opencode_version=first.server_version,
                opencode_capabilities=capabilities(first.server_version).as_dict(),
                label=first.label,
                directory=first.directory,
                permission_rules=list(first.permission_rules),
            )
            if first.server_origin:
                header.update(server_url=first.server_url, server_origin=first.server_origin)
        assert self._writer is not None
        self._writer.header(header)


def _events_texts(events: tuple[dict[str, Any], ...], texts: tuple[str, ...]) -> tuple[str, ...]:
    """Events one a line, as texts to write in order: as received when each text was kept and
    is one line (a frame of several `data:` lines is not), else encoded again. The newline
    comes apart: a large event is not copied again to end its line."""
    if len(texts) != len(events):
        return ("".join(_ENCODE(event) + "\n" for event in events),)
    text = "\n".join(texts)
    if text.count("\n") == len(texts) - 1:  # no text spans lines: write them as they are
        return (text, "\n")
    pairs = zip(events, texts, strict=True)
    return ("".join((t if "\n" not in t else _ENCODE(e)) + "\n" for e, t in pairs),)


def record_type(message: Any) -> str:
    """A `VerdictReached` -> `runner.verdict_reached`."""
    return record_name(type(message))


def record_name(kind: type) -> str:
    """`VerdictReached` (the class) -> `runner.verdict_reached`."""
    return "runner." + re.sub(r"(?<!^)(?=[A-Z])", "_", kind.__name__).lower()
