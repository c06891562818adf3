"""Peak RSS of `python -m runner` (the process a user runs) against the length of the stream.

One phase, one turn that streams N text deltas as fast as the mock can send them, printed as
NDJSON to a pipe this benchmark drains. The runner's VmHWM (its own high-water mark, opencode
not included) is read from /proc every few milliseconds until it exits; the last value read is
its peak. The goal (issue 7): the 40,000-delta phase peaks at most 1.3x the 2,000-delta one.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from actors._process import PINNED_BINARY
from mock import MockLLM, opencode_provider_config
from tests.bench.wall import MODEL, _environment
from tests.helpers import PROJECT_ROOT, make_project

LENGTHS = (2_000, 40_000)
TIMEOUT = 300.0
POLL = 0.005


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


def peak_rss(root: Path, env: dict[str, str], deltas: int) -> tuple[int, int, float]:
    """(peak KiB, exit code, seconds) of one CLI run streaming `deltas` text deltas."""
    project = make_project(root)
    phase = {
        "name": "rss",
        "prompt": "Stream.",
        "model": MODEL,
        "directory": str(project),
        "opencode_config": opencode_provider_config("{env:MOCK_LLM_URL}"),
        "timeouts": {"phase": "5m", "stall": "2m"},
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


def run(out: Callable[[str], None]) -> None:
    """Print the runner's peak RSS for each stream length and the ratio of the last to first."""
    if not PINNED_BINARY.exists():
        out(f"  skipped: the pinned opencode binary is missing ({PINNED_BINARY}); run make setup")
        return
    peaks = []
    with tempfile.TemporaryDirectory(prefix="runner-rss-") as tmp:
        env = _environment(Path(tmp))
        peak_rss(Path(tmp) / "warmup", env, 10)  # opencode's first start creates its database
        out(f"  {'text deltas':>11} {'peak RSS KiB':>13} {'seconds':>8} {'exit':>5}")
        for deltas in LENGTHS:
            peak, code, seconds = peak_rss(Path(tmp) / f"run{deltas}", env, deltas)
            peaks.append(peak)
            out(f"  {deltas:>11,} {peak:>13,} {seconds:>8.1f} {code:>5}")
    out(f"  ratio {LENGTHS[-1]:,} / {LENGTHS[0]:,} deltas: {peaks[-1] / max(peaks[0], 1):.2f}x")
