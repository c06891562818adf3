"""`python -m runner show TRANSCRIPT.jsonl`: render a recorded run again, through the same tracker,
renderer and view as it was shown live: each raw event of the transcript goes through a
`Tracker` of the run's root session, each `runner.*` record becomes its message again, and a
`RendererActor` prints them in order (`--plain`, `--json`, `--thinking`; rich on a terminal).
The tracker sees what it saw live, where it saw it: a `runner.stream_gap` marks its open parts
as the live tracker did, and a `runner.resynced` line's `messages` (what that resync told the
live tracker) are merged as a snapshot right after it, at its `time_ms`. Other effects take the
time of the latest `runner.clock` line and records their own, so NDJSON timestamps and retry
countdowns read as they did.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from runner.cli.args import EXIT_USAGE, PROG, output_mode

__all__ = ["show_main"]


def show_main(argv: list[str]) -> int:
    """`show`: print a recorded run as it was shown live."""
    parser = argparse.ArgumentParser(prog=f"{PROG} show")
    parser.add_argument("transcript", metavar="TRANSCRIPT.jsonl")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="print NDJSON events")
    group.add_argument("--plain", action="store_true", help="no colours or styles")
    parser.add_argument("--thinking", action="store_true", help="show the agent's reasoning")
    args = parser.parse_args(argv)
    try:
        lines = _read(Path(args.transcript))
    except (OSError, ValueError) as exc:
        print(f"runner: {args.transcript}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _replay(lines, mode=output_mode(args, sys.stdout), thinking=args.thinking)
    return 0


def _read(path: Path) -> list[dict[str, Any]]:
    lines = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                lines.append(json.loads(line))
            except ValueError:
                raise ValueError(f"line {number} is not JSON") from None
    if not lines or lines[0].get("type") != "runner.header":
        raise ValueError("not a runner transcript (no runner.header line first)")
    return lines


def _replay(lines: list[dict[str, Any]], *, mode: str, thinking: bool) -> None:
    import pykka  # the heavy modules: only once the arguments are known

    from actors.renderer import SHOW, RendererActor
    from actors.transcript import record_name
    from core.tracker import Tracker
    from messages.pipeline import Tracked

    records = {record_name(kind): kind for kind in SHOW}
    root = _root(lines)
    tracker = Tracker(root or "")
    clock = [0, 0]  # a record's time, for the renderer; the last `runner.clock`, for effects
    renderer = RendererActor.start(
        mode=mode, out=sys.stdout, thinking=thinking, clock_ms=lambda: clock[0], live_status=False
    )

    def show(effects: list[Any], time_ms: int) -> None:
        if effects and root:
            renderer.tell(Tracked(root_session_id=root, effects=tuple(effects), time_ms=time_ms))

    try:
        for line in lines[1:]:
            kind = str(line.get("type"))
            if kind == "runner.clock":
                clock[1] = int(line.get("ms") or clock[1])
            elif not kind.startswith("runner."):
                show(tracker.apply(line) if root else [], clock[1])
            elif kind == "runner.stream_gap":
                tracker.gap()
            elif (message := _message(records.get(kind), line)) is not None:
                clock[0] = int(float(line.get("time", 0)) * 1000)
                renderer.ask(message, timeout=30)  # in order, at the time it was recorded
                # A resync's messages merged as live: right after the record, at its batch's time.
                merged_at = int(line.get("time_ms") or clock[1])
                for session_id, messages in line.get("messages") or ():
                    show(tracker.apply_snapshot(list(messages), session_id=session_id), merged_at)
    finally:
        renderer.stop(timeout=10)
        pykka.ActorRegistry.stop_all(timeout=10)


def _root(lines: list[dict[str, Any]]) -> str | None:
    for line in lines:
        if line.get("type") in ("runner.header", "runner.phase_started") and line.get("session_id"):
            return str(line["session_id"])
    return None


def _message(kind: type | None, line: dict[str, Any]) -> Any:
    """A record line as its message again (None for records the view does not show)."""
    if kind is None:
        return None
    names = {field.name for field in dataclasses.fields(kind)}
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in line.items() if k in names}
    try:
        return kind(**fields)
    except TypeError:
        return None
