"""The `done` checks: artifacts against a baseline, front matter, and the done command."""

from __future__ import annotations

import os
import select
import threading
from pathlib import Path

import pytest

from actors._command import CommandGuard
from actors.checks import (
    ArtifactBaseline,
    CheckFailure,
    CheckReport,
    DoneCriteria,
    repairable,
    run_checks,
    take_baseline,
)

pytestmark = pytest.mark.timeout(30)

GOOD = "---\ntitle: A\ndate: 2024-01-01\n---\nbody\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def check(directory: Path, baseline: ArtifactBaseline | None = None, **criteria) -> CheckReport:
    done = DoneCriteria(**criteria)
    return run_checks(directory, done, baseline or take_baseline(directory, done))


def details(report: CheckReport) -> list[str]:
    return [failure.detail for failure in report.failures]


def shift_mtime(path: Path, seconds: int = 5) -> None:
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + seconds * 1_000_000_000))


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    """True once `pid` has exited (a zombie counts: nobody in this sandbox may reap it)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


# --- artifacts ----------------------------------------------------------------------------


def test_empty_criteria_pass():
    done = DoneCriteria()
    assert done.empty
    report = run_checks(Path("/nonexistent"), done, ArtifactBaseline())
    assert report == CheckReport(passed=True, failures=())


@pytest.mark.parametrize(
    "done",
    [
        DoneCriteria(artifacts=("x",)),
        DoneCriteria(frontmatter=((("x",), ()),)),
        DoneCriteria(command=""),
    ],
)
def test_any_configured_check_makes_criteria_non_empty(done):
    assert not done.empty


def test_artifact_created_after_baseline_passes(tmp_path):
    done = DoneCriteria(artifacts=("notes/*.md",))
    baseline = take_baseline(tmp_path, done)
    write(tmp_path / "notes" / "a.md", "hello")
    assert run_checks(tmp_path, done, baseline).passed


def test_artifact_missing_fails_with_the_glob_named(tmp_path):
    report = check(tmp_path, artifacts=("notes/*.md",))
    assert not report.passed
    assert report.failures == (
        CheckFailure(
            kind="artifacts",
            detail="no file matching 'notes/*.md' was created or modified during this run",
        ),
    )


def test_preexisting_unmodified_artifact_fails(tmp_path):
    write(tmp_path / "notes" / "a.md", "old")
    report = check(tmp_path, artifacts=("notes/*.md",))
    assert not report.passed
    assert "1 matching file(s) exist but are unchanged" in details(report)[0]


def test_preexisting_artifact_with_new_mtime_passes(tmp_path):
    path = write(tmp_path / "notes" / "a.md", "old")
    done = DoneCriteria(artifacts=("notes/*.md",))
    baseline = take_baseline(tmp_path, done)
    shift_mtime(path)
    assert run_checks(tmp_path, done, baseline).passed


def test_preexisting_artifact_with_new_size_and_same_mtime_passes(tmp_path):
    path = write(tmp_path / "notes" / "a.md", "old")
    done = DoneCriteria(artifacts=("notes/*.md",))
    baseline = take_baseline(tmp_path, done)
    before = path.stat()
    path.write_text("old and longer")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert run_checks(tmp_path, done, baseline).passed


def test_same_mtime_and_size_but_new_content_passes_by_hash(tmp_path):
    path = write(tmp_path / "a.md", "aaaa")
    done = DoneCriteria(artifacts=("*.md",))
    baseline = take_baseline(tmp_path, done)
    before = path.stat()
    path.write_text("bbbb")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert run_checks(tmp_path, done, baseline).passed


def test_rewriting_identical_content_with_same_stamp_is_not_a_change(tmp_path):
    path = write(tmp_path / "a.md", "aaaa")
    done = DoneCriteria(artifacts=("*.md",))
    baseline = take_baseline(tmp_path, done)
    before = path.stat()
    path.write_text("aaaa")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert not run_checks(tmp_path, done, baseline).passed


def test_nested_double_star_glob_matches_deep_and_hidden_files(tmp_path):
    done = DoneCriteria(artifacts=("docs/**/*.md",))
    baseline = take_baseline(tmp_path, done)
    write(tmp_path / "docs" / "a" / ".b" / "deep.md", "x")
    assert run_checks(tmp_path, done, baseline).passed


def test_trailing_double_star_means_every_file_below(tmp_path):
    done = DoneCriteria(artifacts=("out/**",))
    baseline = take_baseline(tmp_path, done)
    write(tmp_path / "out" / "sub" / "result.txt", "x")
    assert run_checks(tmp_path, done, baseline).passed


def test_each_artifact_glob_must_match_a_new_file(tmp_path):
    done = DoneCriteria(artifacts=("notes/*.md", "data/*.csv", "*.txt"))
    write(tmp_path / "old.txt", "unchanged")
    baseline = take_baseline(tmp_path, done)
    write(tmp_path / "notes" / "a.md", "x")
    report = run_checks(tmp_path, done, baseline)
    assert [f.kind for f in report.failures] == ["artifacts", "artifacts"]
    assert "'data/*.csv'" in details(report)[0]
    assert "'*.txt'" in details(report)[1]


def test_deleted_baseline_file_does_not_count(tmp_path):
    path = write(tmp_path / "a.md", "x")
    done = DoneCriteria(artifacts=("*.md",))
    baseline = take_baseline(tmp_path, done)
    path.unlink()
    assert not run_checks(tmp_path, done, baseline).passed


def test_directories_do_not_count_as_artifacts(tmp_path):
    done = DoneCriteria(artifacts=("notes*",))
    baseline = take_baseline(tmp_path, done)
    (tmp_path / "notes").mkdir()
    assert not run_checks(tmp_path, done, baseline).passed


# --- front matter -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (GOOD, None),
        ("---\ntitle: A\ndate: 1\n...\nbody\n", None),
        ("---\ndate: 1\n---\n", "front matter is missing required keys: title"),
        ("---\nother: 1\n---\n", "front matter is missing required keys: title, date"),
        (
            "# title\n---\ntitle: A\n---\n",
            "no front matter (the file must start with a '---' line)",
        ),
        ("", "no front matter (the file must start with a '---' line)"),
        ("---\ntitle: A\n", "front matter is not closed (no '---' line after the opening one)"),
        ("---\n- a\n- b\n---\n", "front matter must be a YAML mapping of keys to values, got list"),
        ("---\n---\n", "front matter must be a YAML mapping of keys to values, got empty"),
    ],
)
def test_front_matter_cases(tmp_path, text, problem):
    write(tmp_path / "notes" / "a.md", text)
    report = check(tmp_path, frontmatter=((("notes/*.md",), ("title", "date")),))
    expected = (
        ()
        if problem is None
        else (CheckFailure(kind="frontmatter", detail=f"notes/a.md: {problem}"),)
    )
    assert report.failures == expected


def test_front_matter_invalid_yaml_gives_one_line(tmp_path):
    write(tmp_path / "c.md", "---\ntitle: [unclosed\ndate: 1\n---\n")
    report = check(tmp_path, frontmatter=((("*.md",), ("title",)),))
    (detail,) = details(report)
    assert detail.startswith("c.md: front matter is not valid YAML: ")
    assert "\n" not in detail


def test_front_matter_not_utf8(tmp_path):
    (tmp_path / "b.md").write_bytes(b"---\ntitle: \xff\xfe\n---\n")
    report = check(tmp_path, frontmatter=((("*.md",), ("title",)),))
    assert details(report) == ["b.md: is not UTF-8 text"]


def test_front_matter_glob_matching_nothing_fails(tmp_path):
    report = check(tmp_path, frontmatter=((("notes/*.md",), ("title",)),))
    assert report.failures == (
        CheckFailure(kind="frontmatter", detail="no file matches 'notes/*.md'"),
    )


def test_front_matter_reports_every_bad_file_once(tmp_path):
    write(tmp_path / "notes" / "a.md", GOOD)
    write(tmp_path / "notes" / "b.md", "no front matter\n")
    write(tmp_path / "notes" / "c.md", "---\ntitle: C\n---\n")
    rule = (("notes/*.md", "notes/b.md"), ("title", "date"))
    report = check(tmp_path, frontmatter=(rule,))
    assert details(report) == [
        "notes/b.md: no front matter (the file must start with a '---' line)",
        "notes/c.md: front matter is missing required keys: date",
    ]


# --- command ------------------------------------------------------------------------------


def test_command_exit_zero_passes(tmp_path):
    assert check(tmp_path, command="true").passed


def test_command_failure_carries_output_tail(tmp_path):
    command = "for i in $(seq 1 100); do echo line$i; done; echo oops >&2; exit 2"
    report = check(tmp_path, command=command)
    (failure,) = report.failures
    assert failure.kind == "command"
    head, _, output = failure.detail.partition("\n")
    assert head == f"done.command '{command}' exited 2:"
    lines = output.splitlines()
    assert len(lines) == 40
    assert lines[0] == "line62"
    assert lines[-1] == "oops"


def test_command_failure_without_output(tmp_path):
    assert details(check(tmp_path, command="exit 3")) == [
        "done.command 'exit 3' exited 3 (no output)"
    ]


def test_command_output_is_bounded(tmp_path):
    report = check(tmp_path, command="head -c 1000000 /dev/zero | tr '\\0' 'a'; exit 1")
    assert len(details(report)[0]) < 70_000


def test_command_runs_in_the_directory_with_stdin_closed(tmp_path):
    report = check(tmp_path, command="pwd > where.txt; cat > stdin.txt")
    assert report.passed
    assert Path((tmp_path / "where.txt").read_text().strip()).resolve() == tmp_path.resolve()
    assert (tmp_path / "stdin.txt").read_text() == ""


def test_command_timeout_kills_the_process_group(tmp_path):
    command = "echo started; sleep 30 & echo $! > child.pid; wait"
    report = check(tmp_path, command=command, command_timeout=0.5)
    (detail,) = details(report)
    assert detail.startswith(f"done.command '{command}' timed out after 0.5s")
    assert detail.endswith("\nstarted")
    pid = int((tmp_path / "child.pid").read_text())
    assert wait_dead(pid)


def test_command_background_leftovers_are_killed_after_it_exits(tmp_path):
    report = check(tmp_path, command="sleep 30 & echo $! > child.pid; exit 0")
    assert report.passed
    assert wait_dead(int((tmp_path / "child.pid").read_text()))


def test_command_that_cannot_start_is_a_failure(tmp_path):
    report = check(tmp_path / "missing", command="true")
    (failure,) = report.failures
    assert failure.kind == "command"
    assert failure.detail.startswith("done.command 'true' could not be started: ")


# --- all together -------------------------------------------------------------------------


def test_all_checks_run_and_report_in_order(tmp_path):
    write(tmp_path / "a.md", "nothing\n")
    report = check(
        tmp_path,
        artifacts=("out/*.txt",),
        frontmatter=((("*.md",), ("title",)),),
        command="echo bad; exit 1",
    )
    assert [f.kind for f in report.failures] == ["artifacts", "frontmatter", "command"]
    assert report.text == "\n\n".join(details(report))


def test_criteria_from_phase_checks():
    from runner.phase._spec import DoneChecks, FrontMatterCheck

    done = DoneChecks(
        artifacts=("a/*.md",),
        frontmatter=(FrontMatterCheck(globs=("b/*.md",), required=("title",)),),
        command="make check",
    )
    criteria = DoneCriteria.from_checks(done, command_timeout=10)
    assert criteria == DoneCriteria(
        artifacts=("a/*.md",),
        frontmatter=((("b/*.md",), ("title",)),),
        command="make check",
        command_timeout=10,
    )


ART = CheckFailure(kind="artifacts", detail="a")
FM = CheckFailure(kind="frontmatter", detail="f")
CMD = CheckFailure(kind="command", detail="c")


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        ((), False),
        ((FM,), True),
        ((CMD,), True),
        ((FM, CMD), True),
        ((ART,), True),  # a missing artifact is a repair too: its prompt names the file
        ((ART, FM), True),
        ((ART, FM, CMD), True),
    ],
)
def test_repairable(failures, expected):
    assert repairable(CheckReport(passed=not failures, failures=failures)) is expected


class SignallingGuard(CommandGuard):
    """A guard that tells the test when the command has started."""

    def __init__(self):
        super().__init__()
        self.started = threading.Event()

    def add(self, pgid):
        super().add(pgid)
        self.started.set()


def test_the_guard_kills_a_running_command_when_the_phase_ends(tmp_path):
    guard = SignallingGuard()
    criteria = DoneCriteria(command="echo started; sleep 30", command_timeout=60)
    reports = []
    worker = threading.Thread(
        target=lambda: reports.append(run_checks(tmp_path, criteria, ArtifactBaseline(), guard))
    )
    worker.start()
    assert guard.started.wait(10)
    guard.kill()
    worker.join(timeout=10)
    assert not worker.is_alive()
    (report,) = reports
    assert report.failures[0].detail.startswith(
        "done.command 'echo started; sleep 30' was killed by signal 9"
    )


def test_a_command_started_after_the_phase_ended_is_killed_at_once(tmp_path):
    guard = CommandGuard()
    guard.kill()
    criteria = DoneCriteria(command="sleep 30", command_timeout=60)
    report = run_checks(tmp_path, criteria, ArtifactBaseline(), guard)
    assert "was killed by signal 9" in report.failures[0].detail
