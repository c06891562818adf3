"""Peak RSS of `python -m runner` (the process a user runs) against the length of the stream.

One phase, one turn that streams N text deltas as fast as the mock can send them, printed as
NDJSON to a pipe this benchmark drains. The runner's VmHWM (its own high-water mark, opencode
not included) is read from /proc every few milliseconds until it exits; the last value read is
its peak. The goal (issue 8): the 100,000-delta phase peaks at most 1.2x the 10,000-delta one.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mock import MockLLM, opencode_provider_config
from tests.bench.wall import MODEL, PINNED_BINARY, environment
from tests.helpers import PROJECT_ROOT, make_project

TIMEOUT = 600.0
POLL = 0.005
CONTEXT_TOKENS = 10_000_000
KEYS = ("10k", "100k")  # results.json's names for the short and the long phase


@dataclass(frozen=True, slots=True)
class Sizes:
    """Text deltas of the short and the long phase; whether a first, unmeasured run warms up;
    runs of each length (the median is the figure: one run's peak varies by 10-20%)."""

    lengths: tuple[int, int] = (10_000, 100_000)
    warm_up: bool = True
    runs: int = 3


def _vm_hwm_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def _drain(stream, sink: list[int]) -> None:
    for line in stream:
        sink[0] += len(line)


def _config() -> dict[str, Any]:
    """The mock's provider, with room for the whole text in the model's context: past its
    100k tokens (about 55,000 of these deltas) opencode 1.18.33 crawls (over 15 minutes for
    100,000 deltas instead of 25 s), and the phase would measure that instead."""
    config = opencode_provider_config("{env:MOCK_LLM_URL}")
    for model in config["provider"]["test"]["models"].values():
        model["limit"]["context"] = CONTEXT_TOKENS
    return config


def peak_rss(root: Path, env: dict[str, str], deltas: int) -> tuple[int, int, float]:
    """(peak KiB, exit code, seconds) of one CLI run streaming `deltas` text deltas."""
    project = make_project(root)
    phase = {
        "name": "rss",
        "prompt": "Stream.",
        "model": MODEL,
        "directory": str(project),
        "opencode_config": _config(),
        "timeouts": {"phase": "10m", "stall": "2m"},
    }
    path = root / "phase.yaml"
    path.write_text(yaml.safe_dump(phase))
    script = {"turns": [{"text": [f"w{i} " for i in range(deltas)]}]}
    with MockLLM(script) as mock:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", str(path), "--json"],
            cwd=PROJECT_ROOT,
            env={**env, "MOCK_LLM_URL": mock.url},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        printed = [0]
        drainer = threading.Thread(target=_drain, args=(proc.stdout, printed), daemon=True)
        drainer.start()
        peak = 0
        while proc.poll() is None and time.perf_counter() - started < TIMEOUT:
            peak = max(peak, _vm_hwm_kib(proc.pid) or 0)
            time.sleep(POLL)  # sampling a high-water mark: a missed sample loses nothing
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        drainer.join(timeout=10)
    return peak, proc.returncode, time.perf_counter() - started


def run(out: Callable[[str], None], sizes: Sizes) -> dict[str, Any]:
    """Print the runner's peak RSS for each stream length and the ratio of the long to the
    short; return them (`results.json`'s `rss_kib`)."""
    if not PINNED_BINARY.exists():
        raise RuntimeError(f"the pinned opencode binary is missing ({PINNED_BINARY}): make setup")
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="runner-rss-") as tmp:
        env = environment(Path(tmp))
        if sizes.warm_up:  # opencode's first start creates its database
            peak_rss(Path(tmp) / "warmup", env, 10)
        out(f"  {'text deltas':>11} {'peak RSS KiB':>13} {'seconds':>8} {'exit':>5}")
        for index in range(sizes.runs):  # alternating, so drift hits both lengths alike
            for key, deltas in zip(KEYS, sizes.lengths, strict=True):
                peak, code, seconds = peak_rss(Path(tmp) / f"run{deltas}-{index}", env, deltas)
                runs = figures.setdefault(f"{key}_runs", [])
                runs.append({"deltas": deltas, "peak": peak, "seconds": seconds, "exit_code": code})
                out(f"  {deltas:>11,} {peak:>13,} {seconds:>8.1f} {code:>5}")
        for key in KEYS:
            figures[key] = statistics.median(run["peak"] for run in figures[f"{key}_runs"])
    short, long = sizes.lengths
    figures["ratio"] = figures[KEYS[1]] / max(figures[KEYS[0]], 1)
    out(
        f"  median of {sizes.runs}: {figures[KEYS[0]]:,.0f} and {figures[KEYS[1]]:,.0f} KiB;"
        f" ratio {long:,} / {short:,} deltas: {figures['ratio']:.2f}x"
    )
    return figures
