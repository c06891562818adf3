"""What the figures were measured on: CPU, cores, memory, Python, pykka, opencode."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tests.bench.wall import PINNED_BINARY
from tests.helpers import PROJECT_ROOT


def _proc_field(path: str, name: str) -> str | None:
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return None


def _opencode_version() -> str:
    try:
        done = subprocess.run(
            [str(PINNED_BINARY), "--version"],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    return done.stdout.strip() or "unknown"


def _git(*args: str) -> subprocess.CompletedProcess[str] | None:
    """A read-only git command in the project (no optional locks: it never writes the index)."""
    try:
        return subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=PROJECT_ROOT,
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def reference_s() -> float:
    """Seconds for a fixed pure-Python loop (median of 3): how fast the machine ran Python at
    that moment. A shared or throttled machine changes every figure; this says by how much."""
    laps = []
    for _ in range(3):
        start = time.perf_counter()
        sum(range(10_000_000))
        laps.append(time.perf_counter() - start)
    return statistics.median(laps)


def describe() -> dict[str, Any]:
    """The machine and the versions, and one line saying it all (`results.json`'s `machine`)."""
    mem_kib = _proc_field("/proc/meminfo", "MemTotal")
    ram_gib = int(mem_kib.split()[0]) / 2**20 if mem_kib else None
    head, diff = _git("rev-parse", "HEAD"), _git("diff", "--quiet", "HEAD")
    facts = {
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cpus": os.cpu_count(),
        "ram_gib": round(ram_gib, 1) if ram_gib else None,
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "pykka": version("pykka"),
        "opencode": _opencode_version(),
        "load_avg": os.getloadavg(),
        "commit": head.stdout.strip() if head and head.returncode == 0 else None,
        "uncommitted_changes": None if diff is None else diff.returncode == 1,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    ram = f"{facts['ram_gib']} GiB RAM" if ram_gib else "RAM unknown"
    facts["machine"] = (
        f"{facts['cpu']}, {facts['cpus']} cores, {ram}, {facts['os']}; Python {facts['python']},"
        f" pykka {facts['pykka']}, opencode {facts['opencode']}"
    )
    return facts
