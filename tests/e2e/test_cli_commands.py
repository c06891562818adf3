"""`python -m runner check` and `python -m runner show` as a user runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cli import cli, write_note  # noqa: F401 (a fixture)
from tests.helpers import PROJECT_ROOT, isolated_env, make_project, runner_cli

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def runner(*args):
    return runner_cli(*args)


def test_show_prints_what_the_live_plain_run_printed(cli):  # noqa: F811
    turns = [
        {"text": "Writing the note.", "tool_calls": [write_note()]},
        {"tool_calls": [{"name": "read", "arguments": {"filePath": "notes/note.md"}}]},
        {"text": ["All ", "done."]},
    ]
    run = cli({"turns": turns}, done={"artifacts": ["notes/note.md"]}, warm=True)
    assert run.code == 0, run.stderr[-2000:]
    shown = runner("show", run.result["transcript"], "--plain")
    assert shown.returncode == 0, shown.stderr
    live = run.stdout.splitlines()
    again = shown.stdout.splitlines()
    assert "All done." in live
    assert again == live


def test_show_json_prints_the_run_format_lines_and_the_result(cli):  # noqa: F811
    run = cli({"turns": [{"text": "Hello."}]}, warm=True)
    shown = runner("show", run.result["transcript"], "--json")
    assert shown.returncode == 0, shown.stderr
    kinds = [line.split('"type":"', 1)[1].split('"', 1)[0] for line in shown.stdout.splitlines()]
    assert kinds == ["step_start", "text", "step_finish", "runner.result"]


def test_show_of_a_file_that_is_no_transcript_is_64_with_one_line(tmp_path):
    bogus = tmp_path / "x.jsonl"
    bogus.write_text('{"type": "session.idle"}\n')
    shown = runner("show", bogus)
    assert shown.returncode == 64
    assert shown.stderr.strip() == (
        f"runner: {bogus}: not a runner transcript (no runner.header line first)"
    )


def run_isolated(tmp_path, *args):
    env = {**os.environ, **isolated_env(tmp_path)}
    env.pop("MOCK_LLM_URL", None)
    env.pop("OPENCODE_SERVER_PASSWORD", None)
    return subprocess.run(
        [sys.executable, "-m", "runner", *map(str, args)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )


def test_the_example_phase_runs_as_is_on_its_embedded_mock(tmp_path):
    example = tmp_path / "hello"
    shutil.copytree(PROJECT_ROOT / "examples" / "hello", example, ignore=LOCAL_OUTPUTS)
    run = run_isolated(tmp_path, example / "phase.yaml", "--plain")
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-2000:])
    assert "verdict: done" in run.stdout
    assert (example / "workspace" / "notes" / "hello.md").is_file()
    (debug_log,) = (example / "runs").glob("*.debug.log")
    stopped = [line for line in debug_log.read_text().splitlines() if "mock LLM (" in line]
    assert len(stopped) == 1, stopped  # one mock for the run, none more per phase


LOCAL_OUTPUTS = shutil.ignore_patterns("runs", "notes", "__pycache__")


def test_mock_flag_serves_a_phase_that_names_no_provider(tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text("turns:\n  - text: Hi from the flag.\n")
    project = make_project(tmp_path / "work")
    phase = tmp_path / "p.yaml"
    phase.write_text(f"name: p\nprompt: Say hi.\ndirectory: {project}\n")
    run = run_isolated(tmp_path, phase, "--plain", "--mock", script)
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-2000:])
    assert "Hi from the flag." in run.stdout


def test_a_bad_mock_script_is_64_with_one_line(tmp_path):
    script = tmp_path / "script.json"
    script.write_text('{"turns": [{"text": 3}]}')
    phase = tmp_path / "p.yaml"
    phase.write_text("name: p\nprompt: Say hi.\nmock: script.json\n")
    run = run_isolated(tmp_path, "check", phase)
    assert run.returncode == 64
    assert run.stderr.strip().startswith(f"runner: {phase}: mock: not a mock script: ")
    assert "\n" not in run.stderr.strip()


@pytest.mark.serial  # a bound in seconds
def test_a_sub_second_provider_hint_is_honoured_and_shown_in_milliseconds(cli):  # noqa: F811
    fault = {"kind": "429", "retry_after_ms": 300, "headers": {"x-ratelimit-remaining": "0"}}
    run = cli({"turns": [{"text": "After the hint.", "faults": [fault]}]}, warm=True)
    assert run.code == 0, run.stderr[-2000:]
    retry = [line for line in run.stdout.splitlines() if line.startswith("retrying in ")]
    assert len(retry) == 1, run.stdout
    first, second = run.mock.journal.turns()
    if run.result["server_capabilities"]["protocol"] == 2:
        # 2.1.2 waits its own backoff instead of a sub-second hint (3 s for `retry-after-ms: 300`):
        # the line must say how long it really waits
        shown = float(retry[0].split(",")[0].removeprefix("retrying in ").removesuffix("s"))
        assert abs((second.time - first.time) - shown) < 1.0, (retry, second.time - first.time)
        return
    assert retry[0].split(",")[0].endswith("ms"), retry  # e.g. "retrying in 297ms"
    assert 0.25 <= second.time - first.time < 2.0  # waited the hint, not a default backoff


def test_isolate_runs_on_a_fresh_data_folder_and_removes_it(cli, tmp_path):  # noqa: F811
    run = cli({"turns": [{"text": "Isolated."}]}, args=("--isolate",))
    assert run.code == 0, run.stderr[-2000:]
    data = Path(run.result["transcript"].removesuffix(".jsonl") + ".opencode-data")
    assert not data.exists()  # removed with the server
    home_data = tmp_path / "home" / ".local" / "share" / "opencode"
    assert not home_data.exists() or not list(home_data.rglob("opencode*.db"))  # nothing kept
