"""Wall time of `python -m runner` against `opencode run` on the same mock script.

Both drive the same opencode (the pinned 1.x, or 2.x from `.opencode2/`: `OPENCODE2`) against
a `MockLLM` serving a small script (text + a `read` tool call, then final text), with one
isolated HOME for the whole benchmark and a fresh git project per run. Runs alternate between
the two tools after one untimed warm-up of each (the first start in a fresh HOME creates
opencode's database). Times are whole process lifetimes. 2.x's `opencode run` gets
`--standalone`: without it, it would start (and leave) 2.x's background service.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mock import MockLLM, opencode_provider_config
from mock.env import opencode_env as environment
from tests.helpers import PROJECT_ROOT, make_project

PINNED_BINARY = PROJECT_ROOT / "node_modules" / ".bin" / "opencode"
OPENCODE2 = PROJECT_ROOT / ".opencode2" / "node_modules" / ".bin" / "opencode2"
TIMEOUT = 120.0
MODEL = "test/mock-model"
PROMPT = "Read README.md and tell me what it says."


@dataclass(frozen=True, slots=True)
class Outcome:
    """One timed run: wall seconds, exit code (None: timed out) and its NDJSON output."""

    seconds: float
    code: int | None
    lines: tuple[dict[str, Any], ...]
    to_first: float | None  # launch to the first event's timestamp
    after_last: float | None  # the last event's timestamp to the exit

    @property
    def detail(self) -> str:
        """What the output held: lines, texts, the read tool's status, the verdict if any."""
        kinds = [x.get("type") for x in self.lines]
        tools = [x["part"]["state"]["status"] for x in self.lines if x.get("type") == "tool_use"]
        verdicts = [x.get("verdict") for x in self.lines if x.get("type") == "runner.result"]
        verdict = f", verdict {verdicts[0]}" if verdicts else ""
        return (
            f"{len(kinds)} NDJSON lines, {kinds.count('text')} text,"
            f" read tool {'/'.join(tools) or 'missing'}{verdict}"
        )


def script(project: Path) -> dict[str, Any]:
    """Text and a `read` of the project's README, then the final text."""
    read = {"name": "read", "arguments": {"filePath": "README.md"}}
    return {
        "title": "Bench",
        "turns": [
            {"text": ["I'll read ", "the README."], "tool_calls": [read]},
            {"text": ["The README ", "says hello ", "from the fixture."]},
        ],
    }


def timed(argv: list[str], *, cwd: Path, env: dict[str, str]) -> Outcome:
    """Run `argv` in its own process group, stdin closed; kill the group if it outlives us."""
    launched, start = time.time(), time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stdout, timed_out = "", False
    try:
        stdout, _stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        with contextlib.suppress(ProcessLookupError):  # also any child left in its group
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    seconds, ended = time.perf_counter() - start, time.time()
    lines = tuple(json.loads(line) for line in stdout.splitlines() if line.startswith("{"))
    stamps = [x["timestamp"] / 1000 for x in lines if isinstance(x.get("timestamp"), int)]
    code = None if timed_out else proc.returncode
    first = stamps[0] - launched if stamps else None
    return Outcome(seconds, code, lines, first, ended - stamps[-1] if stamps else None)


def opencode_run(
    root: Path, env: dict[str, str], binary: Path = PINNED_BINARY, project: Path | None = None
) -> Outcome:
    """`opencode run --format json` in a fresh project (or in `project`), configured for the
    mock."""
    project = project or make_project(root)
    with MockLLM(script(project)) as mock:
        config = json.dumps(opencode_provider_config(mock.url))
        argv = [str(binary), "run", "--format", "json", "-m", MODEL, "--title", "bench"]
        argv += ["--standalone"] if binary == OPENCODE2 else []
        # opencode takes its directory from PWD, not from the process's cwd
        extra = {"OPENCODE_CONFIG_CONTENT": config, "PWD": str(project)}
        return timed([*argv, PROMPT], cwd=project, env={**env, **extra})


def runner_run(root: Path, env: dict[str, str], binary: Path = PINNED_BINARY) -> Outcome:
    """`python -m runner phase.yaml --json` in a fresh project, the same config via env."""
    project = make_project(root)
    phase = {
        "name": "bench",
        "prompt": PROMPT,
        "model": MODEL,
        "directory": str(project),
        "opencode_config": opencode_provider_config("{env:MOCK_LLM_URL}"),
        "permissions": {"allow": ["read"]},  # the script reads README.md
        "timeouts": {"phase": "2m", "stall": "1m"},
        "server": {"opencode": str(binary)},
    }
    path = root / "phase.yaml"
    path.write_text(yaml.safe_dump(phase))
    with MockLLM(script(project)) as mock:
        return timed(
            [sys.executable, "-m", "runner", str(path), "--json"],
            cwd=PROJECT_ROOT,
            env={**env, "MOCK_LLM_URL": mock.url},
        )


@dataclass(frozen=True, slots=True)
class Sizes:
    """Timed runs of each tool (median), and whether one untimed run of each comes first."""

    runs: int = 5
    warm_up: bool = True


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _seconds(value: float | None) -> str:
    return "    -" if value is None else f"{value:5.2f}"


def _report(out: Callable[[str], None], name: str, outcomes: list[Outcome]) -> dict[str, Any]:
    """One line of medians (total, before the first event, after the last) and the runs."""
    figures = {
        "s": statistics.median(o.seconds for o in outcomes),
        "to_first_s": _median([o.to_first for o in outcomes]),
        "after_last_s": _median([o.after_last for o in outcomes]),
        "runs_s": [o.seconds for o in outcomes],
        "exit_codes": [o.code for o in outcomes],
    }
    runs = ", ".join(f"{o.seconds:.2f}" for o in outcomes)
    codes = "/".join(sorted({"timeout" if o.code is None else str(o.code) for o in outcomes}))
    out(
        f"  {name:<29} {figures['s']:6.2f} {_seconds(figures['to_first_s']):>8}"
        f" {_seconds(figures['after_last_s']):>8}   [{runs}]  exit {codes}"
    )
    if outcomes[-1].lines:  # the floor prints nothing
        out(f"  {'':<29} last run: {outcomes[-1].detail}")
    return figures


Tool = Callable[[Path, dict[str, str]], Outcome]


def run(
    out: Callable[[str], None],
    sizes: Sizes,
    floor: Tool | None = None,
    binary: Path = PINNED_BINARY,
) -> dict[str, Any]:
    """Warm up, then alternate timed runs; print medians and the ratio runner/opencode-run.
    `floor` (`tests.bench.serve_floor`) adds a third column: opencode serve with the least
    client there is, which splits the ratio into opencode's share and the runner's. `binary`:
    the opencode both drive."""
    if not binary.exists():
        raise RuntimeError(f"the opencode binary is missing ({binary}): make setup")
    tools: list[tuple[str, Tool]] = [
        ("opencode run --format json", lambda root, env: opencode_run(root, env, binary)),
        ("python -m runner --json", lambda root, env: runner_run(root, env, binary)),
    ]
    tools += [("opencode serve, least client", floor)] if floor is not None else []
    results: dict[str, list[Outcome]] = {name: [] for name, _ in tools}
    first = 0 if sizes.warm_up else 1  # run 0 of each tool is an untimed warm-up
    with tempfile.TemporaryDirectory(prefix="runner-bench-") as tmp:
        env = environment(Path(tmp))
        for index in range(first, sizes.runs + 1):
            ordered = tools if index % 2 else tools[::-1]  # no tool always follows the same one
            for number, (name, tool) in enumerate(ordered):
                outcome = tool(Path(tmp) / f"run{index}-{number}", env)
                results[name].extend([outcome] if index else [])
        startup = statistics.median(_startup(env) for _ in range(sizes.runs))
    warm = "after one untimed warm-up of each" if sizes.warm_up else "no warm-up"
    out(f"  median of {sizes.runs} alternating runs, {warm}")
    out(f"  {'':<29} {'total':>6} {'to 1st':>8} {'after':>8}   runs")
    figures = {name: _report(out, name, results[name]) for name, _ in tools}
    opencode, runner = figures[tools[0][0]], figures[tools[1][0]]
    ratio = runner["s"] / opencode["s"]
    out(f"  ratio runner / opencode run: {ratio:.2f}x")
    split = _split(out, runner, opencode, figures[tools[2][0]]) if floor is not None else {}
    out("  to 1st: launch to the first event's timestamp; after: last event's timestamp to exit")
    out(f"  python -m runner --help (interpreter and imports): {startup:.2f} s")
    return {
        "runner_s": runner["s"],
        "opencode_run_s": opencode["s"],
        "ratio": ratio,
        "runner": runner,
        "opencode_run": opencode,
        **split,
        "runner_help_s": startup,
        "runs": sizes.runs,
        "warm_up": sizes.warm_up,
    }


def _split(
    out: Callable[[str], None],
    runner: dict[str, Any],
    opencode: dict[str, Any],
    floor: dict[str, Any],
) -> dict[str, Any]:
    """The ratio in two: opencode serve's path against `opencode run`, the runner against it."""
    serve_share, own_share = floor["s"] / opencode["s"], runner["s"] / floor["s"]
    out(f"    = serve floor / opencode run {serve_share:.2f}x (opencode's serve path)")
    out(f"    x runner / serve floor {own_share:.2f}x (the runner's own share)")
    return {"serve_floor": floor, "floor_ratio": serve_share, "runner_over_floor": own_share}


def _startup(env: dict[str, str]) -> float:
    """Seconds for `python -m runner --help`: the interpreter and the runner's imports."""
    return timed([sys.executable, "-m", "runner", "--help"], cwd=PROJECT_ROOT, env=env).seconds
