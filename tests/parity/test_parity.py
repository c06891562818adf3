"""`python -m mock.parity` over every parity script: the runner's `--json` must match
`opencode run --format json` on the same mock script (README, "Parity with `opencode run`")."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import pytest

from core.opencode_versions import capabilities
from mock.parity import OPENCODE
from tests.helpers import PROJECT_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

SCRIPTS = sorted((PROJECT_ROOT / "tests" / "parity" / "scripts").glob("*.json"))


def test_the_scripts_cover_what_parity_must_show():
    names = {path.stem for path in SCRIPTS}
    assert {
        "basic",
        "one_tool",
        "multi_tool",
        "three_tools_one_turn",
        "reasoning",
        "permission_rejected",
        "rate_limit_retry",
        "http_400",
        "internal_error",
        "subagent",
    } <= names


@functools.cache
def server_version() -> str:
    """The version of the opencode the comparison runs (`$RUNNER_OPENCODE` or the pinned one)."""
    argv = [str(OPENCODE), "--version"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_runner_json_matches_opencode_run(script, run_phase, tmp_path):
    if script.stem == "internal_error" and not capabilities(server_version()).gives_up_retrying:
        # opencode 1.18.16 and older retry a persistent 500 until aborted, so `opencode run`
        # never ends and prints nothing to compare with (docs/opencode-versions.md). The
        # runner must still end it, by its retry budget, with the provider's message.
        phase = tmp_path / "phase.yaml"
        phase.write_text("name: ie\nprompt: Proceed.\nbudgets:\n  provider_retries: 3\n")
        run = run_phase(phase, script=json.loads(script.read_text()))
        assert (run.result.verdict, run.result.exit_code) == ("failed", 1)
        assert run.result.reason == "provider retried 4 times (budget 3): upstream on fire"
        return
    done = subprocess.run(
        [sys.executable, "-m", "mock.parity", str(script), "--timeout", "150"],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=380,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert done.stdout.startswith(f"parity {script.name}: equal")
