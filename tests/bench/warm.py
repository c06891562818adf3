"""Warm servers: `python -m runner --json` leasing from the pool daemon (`python -m runner up`)
against a cold `opencode run --format json`, on the wall benchmark's script (`tests.bench.wall`).

One isolated HOME (and state folder) holds the daemon for the whole section, started with
`python -m runner up` and stopped with `down`: the runs find it and lease from it as a user's
do. One untimed run of each tool comes first (the runner's starts the daemon's first server);
then the two alternate, twice: all in one project, as a user's phases on one repository run
(`ratio`), and each in a fresh project (`ratio_fresh_project`: opencode's first request in a
directory costs about 1 s, warm server or not).
Each timed runner run also gives its per-phase overhead: the phase's start (`started_at`) to
its prompt accepted (`runner.prompt_sent`), and from the process launch. Then more one-phase
runs, one after another, make `phases` in all (the example's server grows past
`recycle_rss_mib` in a few phases, so the daemon recycles as it goes); the daemon's own
resident memory after the first 11 (the warm-up and the timed runs) and after the last shows
whether it keeps anything per lease.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mock.env import opencode_env
from tests.bench import wall
from tests.helpers import PROJECT_ROOT, make_project, runner_cli


@dataclass(frozen=True, slots=True)
class Sizes:
    """Timed runs of each tool (median), and the phases the daemon serves in all."""

    runs: int = 5
    phases: int = 200


def _runner(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return runner_cli(*args, env=env, timeout=120)


def warm_run(root: Path, env: dict[str, str], project: Path | None = None) -> wall.Outcome:
    """`python -m runner phase.yaml --json` on the pool, in a fresh project (or in `project`):
    the wall script as the phase's `mock` (a leased server's mock LLM is the daemon's; the
    lease hands it the script)."""
    root.mkdir(parents=True, exist_ok=True)
    project = project or make_project(root)
    (root / "script.json").write_text(json.dumps(wall.script(project)))
    phase = {
        "name": "bench",
        "prompt": wall.PROMPT,
        "model": wall.MODEL,
        "mock": "script.json",
        "directory": str(project),
        "permissions": {"allow": ["read"]},
        "timeouts": {"phase": "2m", "stall": "1m"},
    }
    path = root / "phase.yaml"
    path.write_text(yaml.safe_dump(phase))
    return wall.timed(
        [sys.executable, "-m", "runner", str(path), "--json"], cwd=PROJECT_ROOT, env=env
    )


def overheads(outcome: wall.Outcome) -> tuple[float, float]:
    """(phase start to prompt accepted, process launch to prompt accepted), from the result
    line and the transcript it names."""
    (result,) = [line for line in outcome.lines if line.get("type") == "runner.result"]
    if result["verdict"] != "done" or not result.get("server_origin"):
        raise RuntimeError(f"a warm run did not run done on the pool: {result['reason']}")
    with open(result["transcript"], encoding="utf-8") as transcript:
        sent = next(
            json.loads(line)["time"] for line in transcript if '"runner.prompt_sent"' in line
        )
    first = next(
        x["timestamp"] / 1000 for x in outcome.lines if isinstance(x.get("timestamp"), int)
    )
    launched = first - (outcome.to_first or 0.0)
    return sent - result["started_at"], sent - launched


def run(out: Callable[[str], None], sizes: Sizes) -> dict[str, Any]:
    """Up, warm up, alternate, fill to `phases`, down; print and return the figures."""
    with tempfile.TemporaryDirectory(prefix="runner-bench-warm-") as tmp:
        env = opencode_env(Path(tmp))
        up = _runner("up", env=env)
        if up.returncode != 0:
            raise RuntimeError(f"python -m runner up failed: {up.stderr.strip()}")
        try:
            return _measure(out, sizes, Path(tmp), env)
        finally:
            down = _runner("down", env=env)
            out(f"  {down.stdout.strip() or down.stderr.strip()}")


def _measure(
    out: Callable[[str], None], sizes: Sizes, tmp: Path, env: dict[str, str]
) -> dict[str, Any]:
    project = make_project(tmp / "one")
    warm_run(tmp / "warm-up", env, project)  # found and leased: its first server starts
    wall.opencode_run(tmp / "warm-up-cold", env, project=project)
    figures = {
        mode: _pairs(out, sizes.runs, tmp / mode, env, None if mode == "fresh" else project)
        for mode in ("one", "fresh")
    }
    one, fresh = figures["one"], figures["fresh"]
    phase_s = [overheads(o)[0] for o in one["warm"] + fresh["warm"]]
    launch_s = [overheads(o)[1] for o in one["warm"] + fresh["warm"]]
    overhead, from_launch = statistics.median(phase_s), statistics.median(launch_s)
    out(
        f"  overhead, phase start to prompt accepted: {overhead:.3f} s"
        f" (from the process launch: {from_launch:.2f} s); median of {len(phase_s)}"
    )
    served = 1 + 2 * sizes.runs
    rss = {served: _daemon_rss(env)}  # after the first ones: the warm-up and the timed runs
    for number in range(served + 1, sizes.phases + 1):
        outcome = warm_run(tmp / f"fill{number}", env, project)
        if outcome.code != 0:
            raise RuntimeError(f"phase {number} on the pool exited {outcome.code}")
    rss[max(served, sizes.phases)] = _daemon_rss(env)
    early, last = rss[min(rss)], rss[max(rss)]
    status = json.loads(_runner("status", "--json", env=env).stdout)
    out(
        f"  daemon RSS after {min(rss)} phases {early:.1f} MiB, after {max(rss)}"
        f" {last:.1f} MiB ({last / early:.2f}x); {status['leases']} leases in all"
    )
    return {
        "ratio": one["ratio"],
        "warm_s": one["warm_s"],
        "cold_opencode_run_s": one["cold_s"],
        "ratio_fresh_project": fresh["ratio"],
        "warm_fresh_project_s": fresh["warm_s"],
        "cold_fresh_project_s": fresh["cold_s"],
        "overhead_s": overhead,
        "overhead_from_launch_s": from_launch,
        "warm_runs_s": [o.seconds for o in one["warm"]],
        "cold_runs_s": [o.seconds for o in one["cold"]],
        "daemon_rss_mib": {str(k): v for k, v in rss.items()},
        "daemon_rss_growth": last / early,
        "phases": max(rss),
        "leases": status["leases"],
        "runs": sizes.runs,
    }


def _pairs(
    out: Callable[[str], None], runs: int, root: Path, env: dict[str, str], project: Path | None
) -> dict[str, Any]:
    """`runs` alternating pairs, in `project` (None: a fresh project each run)."""
    cold: list[wall.Outcome] = []
    warm: list[wall.Outcome] = []
    for index in range(1, runs + 1):
        pair = [
            (cold, lambda where: wall.opencode_run(where, env, project=project)),
            (warm, lambda where: warm_run(where, env, project)),
        ]
        for number, (into, tool) in enumerate(pair if index % 2 else pair[::-1]):
            into.append(tool(root / f"run{index}-{number}"))
    if {o.code for o in cold + warm} != {0}:
        raise RuntimeError(
            f"a run failed: cold {[o.code for o in cold]}, warm {[o.code for o in warm]}"
        )
    cold_s = statistics.median(o.seconds for o in cold)
    warm_s = statistics.median(o.seconds for o in warm)
    where = "one project for every run" if project else "a fresh project each run"
    out(f"  {where}: median of {runs} alternating runs")
    out(f"    cold opencode run --format json   {cold_s:6.2f} s  [{_list(cold)}]")
    out(f"    python -m runner --json, warm     {warm_s:6.2f} s  [{_list(warm)}]")
    out(f"    ratio warm runner / cold opencode run: {warm_s / cold_s:.2f}x")
    return {
        "cold": cold,
        "warm": warm,
        "cold_s": cold_s,
        "warm_s": warm_s,
        "ratio": warm_s / cold_s,
    }


def _daemon_rss(env: dict[str, str]) -> float:
    return float(json.loads(_runner("status", "--json", env=env).stdout)["rss_mib"])


def _list(outcomes: list[wall.Outcome]) -> str:
    return ", ".join(f"{o.seconds:.2f}" for o in outcomes)
