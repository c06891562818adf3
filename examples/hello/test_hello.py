"""The example phase under provider faults, with the runner's pytest plugin:

    .venv/bin/python -m pytest -p runner.testing examples/hello/test_hello.py

Each test copies the example (its workspace gets written), scripts the mock LLM with a fault,
runs the phase through `run_phase` and checks the verdict and what the transcript recorded; on
both opencode lines (the pinned 1.x, and 2.x from `.opencode2/`, named by `server.opencode`),
from the same mock script.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
OPENCODE2 = HERE.parent.parent / ".opencode2" / "node_modules" / ".bin" / "opencode2"
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["opencode 1", "opencode 2"])
def example(request, tmp_path):
    """A fresh copy of this example and its mock script, for one opencode line."""
    folder = tmp_path / "hello"
    shutil.copytree(HERE, folder, ignore=shutil.ignore_patterns("runs", "__pycache__", "notes"))
    phase = yaml.safe_load((folder / "phase.yaml").read_text())
    if request.param == "opencode 2":
        phase["server"] = {"opencode": str(OPENCODE2)}
    (folder / "phase.yaml").write_text(yaml.safe_dump(phase))
    return folder, json.loads((HERE / "mock-script.json").read_text())


def test_a_rate_limit_twice_then_done(example, run_phase):
    folder, script = example
    script["turns"][0]["faults"] = [{"kind": "429", "attempt": [1, 2], "retry_after": 0}]
    run = run_phase(folder / "phase.yaml", script=script)
    assert run.result.verdict == "done", run.result.reason
    retries = [
        e for e in run.events("session.status") if e["properties"]["status"]["type"] == "retry"
    ]
    assert len(retries) >= 2
    assert run.result.attempts[0]["retries"] >= 2
    assert (folder / "workspace" / "notes" / "hello.md").is_file()


def test_a_persistent_server_error_fails_with_the_provider_message(example, run_phase):
    folder, script = example
    script["turns"][0]["faults"] = [
        {"kind": "500", "attempt": "all", "retry_after": 0, "message": "upstream down"}
    ]
    phase = yaml.safe_load((folder / "phase.yaml").read_text())
    phase["budgets"]["provider_retries"] = 1  # 2.x alone retries a 500 for about 86 s
    (folder / "phase.yaml").write_text(yaml.safe_dump(phase))
    run = run_phase(folder / "phase.yaml", script=script)
    assert run.result.verdict == "failed"
    assert run.result.exit_code == 1
    assert "upstream down" in run.result.reason
