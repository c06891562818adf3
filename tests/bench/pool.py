"""A long batch on one machine: copies of the example phase, `--parallel 4`, with the server
pool recycling its servers (the defaults: `server.recycle_after` 100, `recycle_rss_mib` 768)
and without (one server for the whole batch, as before the pool: `--recycle-after` and
`--recycle-rss` out of reach).

Each copy is the example (`examples/hello`: its phase, its mock script, a workspace of its own)
under its own name, run by `python -m runner ... --plain` on one isolated HOME. Every opencode
server the batch starts (a child of the runner with `serve` in its command line) has its
resident memory sampled every `SAMPLE_S`; the figure is the largest peak of any of them, and
the batch's phases per minute over its wall time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mock.env import opencode_env
from tests.helpers import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "examples" / "hello"
SAMPLE_S = 0.2
TIMEOUT = 1800.0
NO_POOL = ("--recycle-after", "1000000000", "--recycle-rss", "1e12")


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many copies of the example, how many at once."""

    phases: int = 200
    parallel: int = 4


def copies(root: Path, count: int) -> list[Path]:
    """`count` copies of the example phase, each with its own name and workspace (one mock
    script for them all: a run serves one)."""
    root.mkdir(parents=True)
    script = shutil.copy(EXAMPLE / "mock-script.json", root / "mock-script.json")
    paths = []
    for index in range(count):
        folder = root / f"hello-{index:03d}"
        (folder / "workspace").mkdir(parents=True)
        text = (EXAMPLE / "phase.yaml").read_text()
        text = text.replace("name: hello", f"name: hello-{index:03d}")
        text = text.replace("mock: mock-script.json", f"mock: {script}")
        (folder / "phase.yaml").write_text(text)
        paths.append(folder / "phase.yaml")
    return paths


def _servers_rss(parent: int) -> dict[int, int]:
    """The resident KiB of each opencode server that `parent` started."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
            if ppid != parent:
                continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                if b"serve" not in cmdline.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry.name}/status", encoding="ascii") as status:
                rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        except (OSError, ValueError, IndexError, StopIteration):
            continue
        found[int(entry.name)] = rss
    return found


def batch(paths: list[Path], parallel: int, env: dict[str, str], *flags: str) -> dict[str, Any]:
    """Run the batch once: wall seconds, exit code, verdicts, each server's peak KiB."""
    argv = [sys.executable, "-m", "runner", *map(str, paths), "--parallel", str(parallel)]
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*argv, "--plain", *flags],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peaks: dict[int, int] = {}
    deadline = start + TIMEOUT
    while proc.poll() is None and time.perf_counter() < deadline:
        for pid, rss in _servers_rss(proc.pid).items():
            peaks[pid] = max(rss, peaks.get(pid, 0))
        time.sleep(SAMPLE_S)
    if proc.poll() is None:
        proc.kill()
    code = proc.wait()
    seconds = time.perf_counter() - start
    verdicts = []
    for path in paths:
        found = sorted((path.parent / "runs").glob("*.result.json"))
        verdicts.append(json.loads(found[-1].read_text())["verdict"] if found else "missing")
        shutil.rmtree(path.parent / "runs", ignore_errors=True)
        shutil.rmtree(path.parent / "workspace" / "notes", ignore_errors=True)
    return {
        "seconds": seconds,
        "exit_code": code,
        "done": verdicts.count("done"),
        "phases": len(paths),
        "phases_per_min": len(paths) / seconds * 60,
        "servers": len(peaks),
        "opencode_peak_rss_mib": max(peaks.values(), default=0) / 1024,
    }


def run(out: Callable[[str], None], sizes: Sizes) -> dict[str, Any]:
    """The batch with the pool's defaults, then without recycling; print both."""
    with tempfile.TemporaryDirectory(prefix="runner-bench-pool-") as tmp:
        root = Path(tmp)
        env = {**os.environ, **opencode_env(root / "home")}
        paths = copies(root / "phases", sizes.phases)
        pooled = batch(paths, sizes.parallel, env)
        single = batch(paths, sizes.parallel, env, *NO_POOL)
    out(f"  {sizes.phases} copies of the example phase, --parallel {sizes.parallel}")
    out(f"  {'':<34} {'done':>5} {'servers':>8} {'peak MiB':>9} {'phases/min':>11} {'s':>7}")
    for name, figures in (("pool (recycling, defaults)", pooled), ("one server", single)):
        out(
            f"  {name:<34} {figures['done']:>5} {figures['servers']:>8}"
            f" {figures['opencode_peak_rss_mib']:>9.0f} {figures['phases_per_min']:>11.1f}"
            f" {figures['seconds']:>7.1f}"
        )
    return {
        "opencode_peak_rss_mib": pooled["opencode_peak_rss_mib"],
        "phases_per_min": pooled["phases_per_min"],
        "one_server": single,
        "pooled": pooled,
        "phases": sizes.phases,
        "parallel": sizes.parallel,
    }
