"""The transcript: JSONL of the session tree's raw events and the runner's own records.

The first line is a header (runner and opencode versions, phase, session id); then one line
per raw SSE event of the session tree, as received, and one `runner.<record>` line per
lifecycle record (attempt started, prompt sent, reconnect, resync, permission answered,
verdict). Every line is flushed as it is written, so a killed runner leaves a readable file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from typing import Any, TextIO

from loguru import logger

from actors._supervised import Report, SupervisedActor
from messages.pipeline import Tracked

RUNNER_VERSION = "0.1.0"


class TranscriptWriter:
    """Appends JSON lines to one file, flushing each."""

    def __init__(self, path: str, header: dict[str, Any], *, redact: tuple[str, ...] = ()) -> None:
        self.path = path
        self._redact = tuple(secret for secret in redact if secret)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._file: TextIO | None = open(path, "w", encoding="utf-8")  # noqa: SIM115
        self.write({"type": "runner.header", "runner_version": RUNNER_VERSION, **header})

    def write(self, line: dict[str, Any]) -> None:
        """One JSON object, one line, flushed."""
        if self._file is None:
            return
        text = json.dumps(line, ensure_ascii=False, default=str)
        for secret in self._redact:  # were a tool to print the server's password
            if secret in text:
                text = text.replace(secret, "[redacted]")
        self._file.write(text + "\n")
        self._file.flush()

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
    """Writes what the pipeline reports to the transcript, as it arrives."""

    def __init__(self, *, writer: TranscriptWriter, report: Report | None = None) -> None:
        super().__init__(report=report)
        self._writer = writer

    def on_receive(self, message: Any) -> None:
        """Raw events of `Tracked` batches verbatim; any other dataclass as a record."""
        match message:
            case Tracked(raw=raw):
                for event in raw:
                    self._writer.write(event)
            case _ if dataclasses.is_dataclass(message):
                self._writer.record(message)
            case _:
                logger.warning("TranscriptActor ignored unexpected message {!r}", message)

    def on_stop(self) -> None:
        """Leave the file open: its owner writes the verdict last, then closes it."""
        super().on_stop()


def record_type(message: Any) -> str:
    """`VerdictReached` -> `runner.verdict_reached`."""
    name = type(message).__name__
    return "runner." + re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
