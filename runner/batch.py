"""A batch of phases: output folders checked before anything starts, which phases a
`--skip-done` run leaves out, the live table on a terminal, the summary table at the end,
`batch-{time}.json`, and the batch's exit code (the worst phase's)."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import PhaseFileError
from runner.phase import PhaseSpec
from runner.phase._check import TIME_FORMAT

if TYPE_CHECKING:
    from runner.supervisor.result import PhaseResult

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
_WORST_FIRST = (130, 143, 129, 1, 2, 64)
DONE = ("done", "done_gracefully")  # the verdicts `--skip-done` does not run again


@dataclass(frozen=True, slots=True)
class Skipped:
    """A phase `--skip-done` left out: its latest result said `done`."""

    phase: str
    result_path: str
    result: dict[str, Any]


def prepare_outputs(spec: PhaseSpec, *, flag: str | None, create: bool) -> None:
    """The output folders exist (or could be made) and can be written, before anything starts."""
    for key, path in (
        ("output.transcript", spec.output.transcript),
        ("output.result", spec.output.result),
    ):
        folder = Path(path).parent
        why = _unwritable(folder)
        if why is None and create:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # it changed since: say what the OS said
                why = exc.strerror or str(exc)
        if why is not None:
            where = flag if flag and key == "output.transcript" else f"{spec.source}: {key}"
            raise PhaseFileError(f"{where}: cannot write to {folder} ({why})")


def _unwritable(folder: Path) -> str | None:
    """Why `folder` cannot be made (or written to) as it is now, in the words the OS would
    use; None when it can. `check` and a run both ask this before anything is made."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return "File exists" if existing == folder else "Not a directory"
    return None if os.access(existing, os.W_OK) else "not writable"


def exit_code(codes: list[int], signalled: int | None = None) -> int:
    """Interrupted beats failed beats incomplete beats done."""
    if signalled is not None:
        return SIGNAL_EXIT.get(signal.Signals(signalled), 130)
    return next((code for code in _WORST_FIRST if code in codes), 0)


def latest_result(spec: PhaseSpec) -> tuple[str, dict[str, Any]] | None:
    """The newest result JSON an earlier run of this phase wrote, with its path; None when
    there is none that can be read."""
    found = []
    for path in glob.glob(spec.output.earlier) if spec.output.earlier else ():
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            if isinstance(data, dict) and data.get("phase") == spec.name:
                found.append((float(data.get("started_at") or 0), path, data))
        except (OSError, ValueError, TypeError):
            continue
    if not found:
        return None
    _, path, data = max(found, key=lambda item: item[:2])
    return os.path.abspath(path), data


def split_done(specs: list[PhaseSpec]) -> tuple[list[PhaseSpec], list[Skipped]]:
    """The phases to run, and those whose latest result says `done`."""
    run = []
    skipped = []
    for spec in specs:
        latest = latest_result(spec)
        if latest is not None and latest[1].get("verdict") in DONE:
            skipped.append(Skipped(spec.name, latest[0], latest[1]))
        else:
            run.append(spec)
    return run, skipped


def _row(data: dict[str, Any], note: str = "") -> dict[str, Any]:
    totals = data.get("totals") or {}
    return {
        "phase": data.get("phase"),
        "verdict": data.get("verdict"),
        "exit_code": data.get("exit_code"),
        "attempts": totals.get("attempts", len(data.get("attempts") or ())),
        "duration": data.get("duration", 0.0),
        "cost": totals.get("cost", 0.0),
        "result": data.get("result_path") or data.get("result"),
        "skipped": note == "skipped",
    }


def rows(results: list[PhaseResult], skipped: list[Skipped]) -> list[dict[str, Any]]:
    """One row per phase of the batch: the skipped ones first, as their last run ended."""
    table = [{**_row(s.result, "skipped"), "result": s.result_path} for s in skipped]
    table += [_row(dataclasses.asdict(result)) for result in results]
    return table


def summary_lines(table: list[dict[str, Any]]) -> list[str]:
    """The batch summary: phase, verdict, attempts, time and cost, one line each."""
    width = max([5, *(len(str(row["phase"])) for row in table)])
    lines = [f"{'phase':<{width}}  {'verdict':<16} attempts    time      cost"]
    for row in table:
        verdict = f"{row['verdict']} (skipped)" if row["skipped"] else str(row["verdict"])
        lines.append(
            f"{row['phase']!s:<{width}}  {verdict:<16} {row['attempts']:>8} "
            f"{row['duration']:>6.1f}s  ${row['cost']:.4f}"
        )
    return lines


def write_batch(folder: Path, table: list[dict[str, Any]], code: int, now: datetime) -> Path:
    """`batch-{time}.json` in `folder`: every phase's row and the batch's exit code."""
    folder.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"exit_code": code, "phases": table}, indent=2) + "\n"
    stamp = now.strftime(TIME_FORMAT)
    for number in range(1, 1000):  # two batches in one second: -2, -3, ...
        path = folder / (f"batch-{stamp}.json" if number == 1 else f"batch-{stamp}-{number}.json")
        try:
            with open(path, "x", encoding="utf-8") as handle:
                handle.write(body)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{folder}: batch-{stamp}-*.json: no free name")


def finish(
    specs: list[PhaseSpec],
    skipped: list[Skipped],
    results: list[PhaseResult],
    signalled: int | None = None,
    json_lines: bool = False,
) -> int:
    """The batch's exit code (the worst phase's); with more than one phase, or any skipped, its
    summary (a table, or a `runner.batch` line with --json) and `batch-{time}.json`."""
    code = exit_code([result.exit_code for result in results], signalled)
    if len(specs) < 2 and not skipped:
        return code
    table = rows(results, skipped)
    path = write_batch(specs[0].output.result.parent, table, code, datetime.now())
    if json_lines:
        line = {"type": "runner.batch", "exit_code": code, "phases": table, "path": str(path)}
        print(json.dumps(line), flush=True)
    else:
        print("\n".join([*summary_lines(table), f"batch: {path}"]), flush=True)
    return code


def board_for(options: dict[str, Any], parallel: int, phases: int) -> Any:
    """Rich output on a terminal with phases side by side: one live table for them all."""
    out = options.get("out")
    terminal = out is not None and getattr(out, "isatty", lambda: False)()
    if options.get("mode") != "rich" or parallel < 2 or phases < 2 or not terminal:
        return None
    if options.get("verbose"):  # log lines on the same terminal: a live table would hide them
        return None
    from actors.live import LiveBoard
    from actors.renderer import rich_console

    return LiveBoard(rich_console(out), lambda: int(time.time() * 1000))
