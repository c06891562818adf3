"""Batches: the worst exit code wins, `--skip-done` reads each phase's latest result, and a batch
ends with a summary table and `batch-{time}.json`. Nothing here starts a server."""

from __future__ import annotations

import json
import signal
from datetime import datetime

import pytest

from runner import batch
from runner.cli import main
from runner.phase import load_phase
from runner.supervisor.result import PhaseResult

pytestmark = pytest.mark.timeout(30)

# A bare binary name is looked up on PATH only when a server starts: a run that starts one fails.
PHASE = "name: {name}\nprompt: hi\nmodel: test/mock-model\nserver:\n  opencode: no-such-opencode\n"


def write_phase(tmp_path, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(PHASE.format(name=name))
    return path


def write_result(tmp_path, name, verdict, started_at, stamp, **fields):
    runs = tmp_path / "runs"
    runs.mkdir(exist_ok=True)
    path = runs / f"{name}-{stamp}.result.json"
    totals = {"attempts": 2, "cost": 0.25}
    data = {"phase": name, "verdict": verdict, "started_at": started_at, "duration": 3.0}
    path.write_text(json.dumps({**data, "exit_code": 0, "totals": totals, **fields}))
    return path


@pytest.mark.parametrize(
    ("codes", "signalled", "expected"),
    [
        ([0, 0], None, 0),
        ([0, 2, 0], None, 2),
        ([2, 1, 0], None, 1),
        ([1, 130], None, 130),
        ([0], signal.SIGTERM, 143),
        ([], None, 0),
    ],
)
def test_the_batch_exits_with_its_worst_phases_code(codes, signalled, expected):
    assert batch.exit_code(codes, signalled) == expected


def test_the_latest_result_of_the_same_phase_is_found(tmp_path):
    spec = load_phase(write_phase(tmp_path, "a"))
    assert batch.latest_result(spec) is None
    write_result(tmp_path, "a", "done", 100.0, "20261130-100000")
    newest = write_result(tmp_path, "a", "failed", 200.0, "20261130-110000")
    write_result(tmp_path, "a-b", "done", 300.0, "20261130-120000")  # another phase's file
    (tmp_path / "runs" / "a-20261130-130000.result.json").write_text("{not json")
    write_result(tmp_path, "a", "done", "yesterday", "20261130-140000")  # not a time: ignored
    path, data = batch.latest_result(spec)
    assert (path, data["verdict"]) == (str(newest), "failed")


def test_earlier_results_are_found_under_a_folder_with_glob_characters(tmp_path):
    folder = tmp_path / "p[1]*"
    folder.mkdir()
    spec = load_phase(write_phase(folder, "a"))
    done = write_result(folder, "a", "done", 100.0, "20261130-100000")
    assert batch.latest_result(spec) == (str(done), json.loads(done.read_text()))


def test_skip_done_keeps_phases_whose_last_run_was_not_done(tmp_path):
    specs = [load_phase(write_phase(tmp_path, name)) for name in ("a", "b", "c")]
    write_result(tmp_path, "a", "done", 100.0, "20261130-100000")
    write_result(tmp_path, "b", "done", 100.0, "20261130-100000")
    write_result(tmp_path, "b", "incomplete", 200.0, "20261130-110000")
    write_result(tmp_path, "c", "done_gracefully", 100.0, "20261130-100000")
    run, skipped = batch.split_done(specs)
    assert [spec.name for spec in run] == ["b"]
    assert [s.phase for s in skipped] == ["a", "c"]


def test_the_summary_names_each_phase_its_verdict_attempts_time_and_cost():
    result = PhaseResult(
        phase="build", verdict="incomplete", reason="r", exit_code=2, duration=12.34
    )
    skipped = batch.Skipped("a", "/r/a.json", {"phase": "a", "verdict": "done", "duration": 3.0})
    table = batch.rows([result], [skipped])
    assert [row["skipped"] for row in table] == [True, False]
    assert batch.summary_lines(table) == [
        "phase  verdict          attempts    time      cost",
        "a      done (skipped)          0    3.0s  $0.0000",
        "build  incomplete              0   12.3s  $0.0000",
    ]


def test_a_batch_file_holds_every_row_and_the_exit_code(tmp_path):
    path = batch.write_batch(tmp_path / "runs", [{"phase": "a"}], 2, datetime(2026, 11, 30, 9))
    assert path.name == "batch-20261130-090000.json"
    assert json.loads(path.read_text()) == {"exit_code": 2, "phases": [{"phase": "a"}]}
    again = batch.write_batch(tmp_path / "runs", [], 0, datetime(2026, 11, 30, 9))
    assert again.name == "batch-20261130-090000-2.json"  # the same second: never overwritten
    assert json.loads(path.read_text())["exit_code"] == 2


def test_skip_done_on_a_finished_batch_starts_nothing_and_exits_0(tmp_path, capsys):
    phases = [write_phase(tmp_path, name) for name in ("a", "b")]
    for name in ("a", "b"):
        write_result(tmp_path, name, "done", 100.0, "20261130-100000")
    assert main([*map(str, phases), "--skip-done", "--plain"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["a", "done", "(skipped)", "2", "3.0s", "$0.2500"]
    (written,) = (tmp_path / "runs").glob("batch-*.json")
    assert out[-1] == f"batch: {written}"
    body = json.loads(written.read_text())
    assert body["exit_code"] == 0
    assert [row["phase"] for row in body["phases"]] == ["a", "b"]


def test_skip_done_with_json_prints_one_batch_line(tmp_path, capsys):
    phase = write_phase(tmp_path, "a")
    write_result(tmp_path, "a", "done", 100.0, "20261130-100000")
    assert main([str(phase), "--skip-done", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert (record["type"], record["exit_code"]) == ("runner.batch", 0)
    assert record["phases"][0]["skipped"] is True


def test_without_skip_done_a_done_phase_runs_again(tmp_path, capsys):
    phase = write_phase(tmp_path, "a")
    write_result(tmp_path, "a", "done", 100.0, "20261130-100000")
    assert main([str(phase), "--plain"]) == 1  # it tried to start `no-such-opencode`
    assert "no-such-opencode" in capsys.readouterr().out
