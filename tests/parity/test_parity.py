"""`python -m mock.parity` over every parity script: the runner's `--json` must match
`opencode run --format json` on the same mock script (SPEC §7)."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_runner_json_matches_opencode_run(script):
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
