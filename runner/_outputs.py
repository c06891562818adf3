"""The end of a phase: the verdict in the transcript, the result JSON, the verdict block and the
embedder's last event. Each step runs on its own, so one failing (a full disk, a closed stdout)
never keeps the others from happening."""

from __future__ import annotations

from typing import Any

from loguru import logger

from actors.transcript import TranscriptWriter
from messages.records import VerdictReached
from runner.result import PhaseResult, write_result


def write_outputs(result: PhaseResult, *, transcript: TranscriptWriter, options: Any) -> None:
    """Write and show the verdict everywhere it belongs; never raises."""
    full = VerdictReached(
        verdict=result.verdict,
        reason=result.reason,
        exit_code=result.exit_code,
        summary=result.to_dict(),
    )
    steps = (
        ("transcript", lambda: _write_transcript(transcript, full)),
        ("verdict block", lambda: _show_verdict(options, full)),
        ("last event", lambda: options.on_event and options.on_event(full)),
        ("result", lambda: write_result(result)),
    )
    for name, step in steps:
        try:
            step()
        except Exception:
            logger.exception("could not write the phase's {}", name)


def _write_transcript(writer: TranscriptWriter, full: VerdictReached) -> None:
    try:
        writer.record(full)
    finally:
        writer.close()


def _show_verdict(options: Any, full: VerdictReached) -> None:
    if options.out is None:
        return
    from actors.renderer import RendererActor

    renderer = RendererActor.start(mode=options.mode, out=options.out, prefix=options.prefix)
    try:
        renderer.ask(full, timeout=10)
    finally:
        renderer.stop()
