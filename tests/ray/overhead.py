"""`python -m tests.ray.overhead [--runs N]` (`make bench-ray`): what the Ray executor costs per
phase against the local one, on the same 4 phases (copies of the example phase, its mock
script) with `--parallel 4`, alternating, median of N each:

- local: `python -m runner ... --parallel 4` (one server, this process);
- ray: `--executor ray --ray-address` a two-node loopback cluster already running (one server
  per node, each node its own mock), the cluster's start not counted;
- ray-here: `--executor ray` without an address (the runner starts a one-node Ray itself).

Prints the figures and writes them to `bench/ray.json`. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.helpers import PROJECT_ROOT
from tests.ray.conftest import loopback_cluster

EXAMPLE = PROJECT_ROOT / "examples" / "hello"
PHASES = 4


def _phases(root: Path, run: int) -> list[Path]:
    example = yaml.safe_load((EXAMPLE / "phase.yaml").read_text())
    paths = []
    for number in range(PHASES):
        name = f"hello{number}r{run}"
        work = root / f"work-{name}"
        work.mkdir(parents=True)
        phase = {**example, "name": name, "directory": str(work)}
        phase["mock"] = str(EXAMPLE / example["mock"])
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(phase))
        paths.append(path)
    return paths


def _timed(paths: list[Path], env: dict[str, str], *args: str) -> float:
    command = [sys.executable, "-m", "runner", *map(str, paths), "--json", "--parallel", "4"]
    started = time.monotonic()
    done = subprocess.run(
        [*command, *args],
        check=False,
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    took = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{args or 'local'}: exit {done.returncode}: {done.stderr[-2000:]}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.ray.overhead")
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    root = Path(tempfile.mkdtemp(prefix="ray-overhead-"))
    times: dict[str, list[float]] = {"local": [], "ray": [], "ray-here": []}
    with loopback_cluster(root) as cluster:
        here = {k: v for k, v in cluster.env.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
        modes = {
            "local": (cluster.env, ()),
            "ray": (cluster.env, ("--executor", "ray", "--ray-address", cluster.address)),
            "ray-here": (here, ("--executor", "ray")),
        }
        _timed(_phases(root / "warm", 0), cluster.env)  # opencode's first start in a fresh HOME
        for run in range(1, runs + 1):
            for mode, (env, args) in modes.items():
                times[mode].append(_timed(_phases(root / f"{mode}-{run}", run), env, *args))
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    report = {
        "phases": PHASES,
        "runs": runs,
        "wall_s": {mode: round(value, 2) for mode, value in medians.items()},
        "per_phase_overhead_s": {
            mode: round((medians[mode] - medians["local"]) / PHASES, 2)
            for mode in ("ray", "ray-here")
        },
        "all_s": {mode: [round(v, 2) for v in values] for mode, values in times.items()},
    }
    for mode, value in medians.items():
        print(f"{mode:>9}: {value:6.2f} s for {PHASES} phases (median of {runs})")
    for mode, extra in report["per_phase_overhead_s"].items():
        print(f"{mode:>9}: {extra:+.2f} s per phase against local")
    out = PROJECT_ROOT / "bench" / "ray.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
