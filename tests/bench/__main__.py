"""`python -m tests.bench [--smoke] [--out PATH]` (`make bench`): every benchmark, one run.

Prints each benchmark's figures, then a summary of those issues 8 and 21 set goals for, and
writes them all to `--out` (default `bench/results.json`). `--smoke` runs everything with tiny
sizes (about a minute): the same table and the same JSON keys, so CI keeps the benchmarks
working (`tests/e2e/test_bench_smoke.py`). Nothing is asserted on time anywhere; the exit code
is 1 only if a benchmark could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka
from loguru import logger

from runner import tuning
from tests.bench import (
    cli_rss,
    latency,
    machine,
    memory,
    pipeline,
    pool,
    serve_floor,
    stop,
    wall,
    warm,
)
from tests.helpers import PROJECT_ROOT

DEFAULT_OUT = PROJECT_ROOT / "bench" / "results.json"


@dataclass(frozen=True, slots=True)
class Plan:
    """The sizes of one run of every benchmark."""

    wall: wall.Sizes
    pipeline: pipeline.Sizes
    latency: latency.Sizes
    rss: cli_rss.Sizes
    heap: memory.Sizes
    stop: stop.Sizes
    pool: pool.Sizes
    warm: warm.Sizes


FULL = Plan(
    wall=wall.Sizes(runs=5, warm_up=True),
    pipeline=pipeline.Sizes(events=100_000, repeats=5),
    latency=latency.Sizes(rate=2_000, seconds=10),
    rss=cli_rss.Sizes(lengths=(10_000, 100_000), warm_up=True),
    heap=memory.Sizes(lengths=(10_000, 100_000)),
    stop=stop.Sizes(runs=5),
    pool=pool.Sizes(phases=200, parallel=4),
    warm=warm.Sizes(runs=5, phases=200),
)
SMOKE = Plan(
    wall=wall.Sizes(runs=1, warm_up=False),
    pipeline=pipeline.Sizes(events=2_000, repeats=1),
    latency=latency.Sizes(rate=2_000, seconds=1),
    rss=cli_rss.Sizes(lengths=(200, 2_000), warm_up=False, runs=1),
    heap=memory.Sizes(lengths=(1_000, 2_000)),
    stop=stop.Sizes(runs=1),
    pool=pool.Sizes(phases=6, parallel=4),
    warm=warm.Sizes(runs=1, phases=3),
)


def out(line: str) -> None:
    """Print at once (the benchmarks are long)."""
    print(line, flush=True)


def benchmarks(plan: Plan) -> list[tuple[str, str, Callable[[], dict[str, Any]]]]:
    """(results key, title, run) in the order they run."""
    return [
        (
            "wall",
            "1. Wall time: `python -m runner --json` against `opencode run --format json`",
            lambda: wall.run(out, plan.wall, floor=serve_floor.serve_floor),
        ),
        (
            "wall_2",
            "1b. Wall time on opencode 2.x (2.1.2): the same, `opencode run --standalone`",
            lambda: wall.run(out, plan.wall, binary=wall.OPENCODE2),
        ),
        (
            "pipeline",
            "2. Event pipeline throughput (events/s; ratio to the bare loop)",
            lambda: pipeline.run(out, plan.pipeline),
        ),
        (
            "pipeline_2",
            "2b. Event pipeline throughput on opencode 2.x's stream",
            lambda: pipeline.run_2(out, plan.pipeline),
        ),
        (
            "latency_ms",
            "3. Latency: a delta leaving the server to its text printed (plain mode)",
            lambda: latency.run(out, plan.latency),
        ),
        (
            "latency_ms_2",
            "3b. Latency on opencode 2.x's deltas",
            lambda: latency.run(out, plan.latency, line=2),
        ),
        (
            "rss_kib",
            "4. Peak RSS of `python -m runner` against stream length (VmHWM)",
            lambda: cli_rss.run(out, plan.rss),
        ),
        (
            "tracker_heap",
            "5. Heap of decoder + Tracker against stream length (tracemalloc)",
            lambda: memory.run(out, plan.heap),
        ),
        (
            "server_stop",
            "6. A phase's server stop on a fresh HOME, while opencode installs its packages",
            lambda: stop.run(out, plan.stop),
        ),
        (
            "pool",
            "7. A long batch: copies of the example, --parallel 4, the pool against one server",
            lambda: pool.run(out, plan.pool),
        ),
        (
            "warm",
            "8. Warm servers: `python -m runner --json` on the pool daemon against a cold"
            " `opencode run`",
            lambda: warm.run(out, plan.warm),
        ),
    ]


def summary(results: dict[str, Any]) -> None:
    """The figures with goals, side by side."""
    out("\nSummary (goals: issues 8, 21 and 25; figures only, nothing is asserted)")
    out(f"  {'':<44} {'measured':>10} {'against':>10} {'ratio':>7}   goal")
    rows = []
    if "wall" in results:
        w = results["wall"]
        name = f"wall s, median of {w['runs']}: runner / opencode run"
        rows.append(
            (name, f"{w['runner_s']:.2f}", f"{w['opencode_run_s']:.2f}", w["ratio"], "<= 1.05x")
        )
        if "serve_floor" in w:  # the ratio's two shares: opencode serve's, and the runner's own
            floor = w["serve_floor"]["s"]
            rows.append(("  serve floor / opencode run", f"{floor:.2f}", "", w["floor_ratio"], ""))
            rows.append(("  runner / serve floor", "", f"{floor:.2f}", w["runner_over_floor"], ""))
    if "wall_2" in results:
        w2 = results["wall_2"]
        name = "  on 2.x: runner / opencode run 2.x"
        rows.append(
            (name, f"{w2['runner_s']:.2f}", f"{w2['opencode_run_s']:.2f}", w2["ratio"], "<= 1.0x")
        )
        if "wall" in results:
            one = results["wall"]["runner_s"]
            rows.append(
                (
                    "  runner on 2.x / runner on 1.x",
                    f"{w2['runner_s']:.2f}",
                    f"{one:.2f}",
                    w2["runner_s"] / one,
                    "",
                )
            )
    for key, name in (
        ("pipeline", "pipeline events/s: runner / bare loop"),
        ("pipeline_2", "  on 2.x: runner / bare loop"),
    ):
        if key in results:
            p = results[key]
            measured, against = f"{p['runner_eps']:,.0f}", f"{p['baseline_eps']:,.0f}"
            rows.append((name, measured, against, p["ratio"], ">= 0.60x"))
    for key, title in (
        ("latency_ms", "latency ms at {}/s: p50 / p99"),
        ("latency_ms_2", "  on 2.x"),
    ):
        if key in results:
            lat = results[key]
            name = title.format(f"{lat['rate_per_s']:,.0f}")
            rows.append((name, f"{lat['p50']:.2f}", f"{lat['p99']:.2f}", None, "p99 <= 5 ms"))
    if "rss_kib" in results:
        r = results["rss_kib"]
        short, long = r["10k_runs"][0]["deltas"], r["100k_runs"][0]["deltas"]
        name = f"peak RSS KiB: {long:,} / {short:,} deltas"
        rows.append((name, f"{r['100k']:,.0f}", f"{r['10k']:,.0f}", r["ratio"], "<= 1.20x"))
    if "server_stop" in results and results["server_stop"]["median_s"] is not None:
        st = results["server_stop"]
        name = f"server stop s mid-install, median of {len(st['runs'])}"
        rows.append((name, f"{st['median_s']:.2f}", "", None, "<= 0.5 s"))
    rows += _pool_rows(results)
    for name, measured, against, ratio, goal in rows:
        shown = "" if ratio is None else f"{ratio:.2f}x"
        out(f"  {name:<44} {measured:>10} {against:>10} {shown:>7}   {goal}")


def _pool_rows(results: dict[str, Any]) -> list[tuple[str, str, str, float | None, str]]:
    """Issue 25's rows: the pool's long batch, and warm servers from the daemon."""
    rows: list[tuple[str, str, str, float | None, str]] = []
    if "pool" in results:
        po = results["pool"]
        name = f"pool: largest opencode peak MiB, {po['phases']} phases"
        one = po["one_server"]["opencode_peak_rss_mib"]
        rows.append((name, f"{po['opencode_peak_rss_mib']:.0f}", f"{one:.0f}", None, "<= 1024"))
        name = "  phases/min: pool / one server"
        single = po["one_server"]["phases_per_min"]
        ratio = po["phases_per_min"] / single
        rows.append((name, f"{po['phases_per_min']:.1f}", f"{single:.1f}", ratio, ""))
    if "warm" in results:
        wa = results["warm"]
        name = f"warm s, median of {wa['runs']}: pool / cold run"
        measured, against = f"{wa['warm_s']:.2f}", f"{wa['cold_opencode_run_s']:.2f}"
        rows.append((name, measured, against, wa["ratio"], "<= 0.25x"))
        rows.append(
            (
                "  overhead s: phase start to prompt sent",
                f"{wa['overhead_s']:.3f}",
                "",
                None,
                "<= 0.2 s",
            )
        )
        rss = wa["daemon_rss_mib"]
        first, last = min(rss, key=int), max(rss, key=int)
        name = f"  daemon RSS MiB: after {last} / after {first} phases"
        rows.append(
            (name, f"{rss[last]:.1f}", f"{rss[first]:.1f}", wa["daemon_rss_growth"], "<= 1.10x")
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark, print, write the JSON; 1 if one could not run."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (about a minute)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    args = parser.parse_args(argv)
    logger.remove()  # the actors log nothing we want on the benchmark's output
    tuning.tune()  # as the CLI does: the in-process benchmarks measure what it runs
    facts = machine.describe()
    results: dict[str, Any] = {"machine": facts.pop("machine"), "machine_facts": facts}
    results["smoke"], results["seconds"], failed = args.smoke, {}, []
    out(f"runner benchmarks{' (smoke sizes)' if args.smoke else ''}: {results['machine']}")
    out(f"load average before: {' '.join(f'{x:.2f}' for x in facts['load_avg'])}")
    facts["reference_s"] = machine.reference_s()
    out(f"reference loop (sum of 10,000,000 ints, median of 3): {facts['reference_s']:.3f} s")
    try:
        for key, title, bench in benchmarks(SMOKE if args.smoke else FULL):
            out(f"\n{title}")
            start = time.perf_counter()
            try:
                results[key] = bench()
            except Exception as exc:
                failed.append(key)
                out(f"  FAILED: {type(exc).__name__}: {exc}")
                traceback.print_exc()
            results["seconds"][key] = time.perf_counter() - start
            out(f"  ({results['seconds'][key]:.1f} s)")
    finally:
        pykka.ActorRegistry.stop_all()
    facts["load_avg_after"] = os.getloadavg()
    facts["reference_after_s"] = machine.reference_s()
    summary(results)
    out(f"load average after: {' '.join(f'{x:.2f}' for x in facts['load_avg_after'])}")
    out(f"reference loop after: {facts['reference_after_s']:.3f} s")
    results["failed"] = failed
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    out(f"\nwritten: {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
