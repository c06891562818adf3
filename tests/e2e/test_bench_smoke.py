"""`python -m tests.bench --smoke` runs every benchmark (tiny sizes) and writes every figure.

Times are never asserted: this only keeps the benchmarks from rotting (they run the real
opencode, the mock and the runner's public modules, which move under them).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import PROJECT_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]  # benchmarks: no time is asserted

REQUIRED = {
    "wall": ("runner_s", "opencode_run_s", "ratio"),
    "wall_2": ("runner_s", "opencode_run_s", "ratio"),
    "pipeline": ("runner_eps", "baseline_eps", "ratio"),
    "pipeline_2": ("runner_eps", "baseline_eps", "ratio"),
    "latency_ms": ("p50", "p99"),
    "latency_ms_2": ("p50", "p99"),
    "rss_kib": ("10k", "100k"),
    "server_stop": ("median_s",),
    "pool": ("opencode_peak_rss_mib", "phases_per_min"),
    "warm": ("ratio", "overhead_s", "daemon_rss_growth"),
}


def test_bench_smoke_writes_every_figure(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.bench", "--smoke", "--out", str(out)],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=450,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    results = json.loads(out.read_text())
    for section, keys in REQUIRED.items():
        for key in keys:
            value = results[section][key]
            assert isinstance(value, int | float), (section, key, value)
            assert value > 0, (section, key, value)
    assert isinstance(results["machine"], str)
    facts = results["machine_facts"]
    assert facts["reference_s"] > 0
    assert facts["reference_after_s"] > 0
    assert results["machine"]
    assert results["failed"] == []
    # what ran ran well (no timing in it): every run exited 0, every event reached the transcript
    assert set(results["wall"]["runner"]["exit_codes"]) == {0}
    assert set(results["wall"]["opencode_run"]["exit_codes"]) == {0}
    assert set(results["wall"]["serve_floor"]["exit_codes"]) == {0}  # idle after the answer
    assert set(results["wall_2"]["runner"]["exit_codes"]) == {0}  # on opencode 2.x
    assert set(results["wall_2"]["opencode_run"]["exit_codes"]) == {0}
    rss = results["rss_kib"]
    assert {run["exit_code"] for run in rss["10k_runs"] + rss["100k_runs"]} == {0}
    assert {run["exit_code"] for run in results["server_stop"]["runs"]} == {0}
    assert results["server_stop"]["install_took_sigterm"] == 1  # it stopped mid-install
    loopback = results["pipeline"]["loopback"]
    assert loopback["runner_transcript_events"] == loopback["runner_forwarded"] > 0
    for run in (results["pool"]["pooled"], results["pool"]["one_server"]):  # every copy done
        assert (run["exit_code"], run["done"]) == (0, run["phases"]), run
    on_two = results["pipeline_2"]["loopback"]  # 2.x's events reached the tree and the file
    assert on_two["runner_transcript_events"] == on_two["runner_forwarded"] > 0
