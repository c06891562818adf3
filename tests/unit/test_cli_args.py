"""Bad phase files and bad flags: exit 64 and one line naming the file (or flag) and the key.

Validation happens before anything starts, so these run in-process with no server.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from runner.cli import main
from tests.helpers import PROJECT_ROOT
from tests.unit.test_phase_file import BAD_FILES as PHASE_BAD_FILES

pytestmark = pytest.mark.timeout(30)

GOOD = "name: p\nprompt: hi\nmodel: test/mock-model\n"


def run_cli_args(capsys, argv):
    """main(argv)'s exit code, its stderr and its stdout."""
    try:
        code = main(argv)
    except SystemExit as exited:
        code = exited.code
    captured = capsys.readouterr()
    return code, captured.err.strip(), captured.out


def run_cli(capsys, tmp_path, text, *flags):
    """main()'s exit code (argparse exits through SystemExit) and its stderr."""
    (tmp_path / "p.yaml").write_text(text)
    try:
        code = main([str(tmp_path / "p.yaml"), *flags])
    except SystemExit as exited:
        code = exited.code
    return code, capsys.readouterr().err.strip()


BAD_FILES = [
    (
        GOOD + "budgets:\n  resumes: three\n",
        "budgets.resumes: expected a non-negative integer, got 'three'",
    ),
    (GOOD + "budgets:\n  resume: 1\n", "budgets.resume: unknown key (did you mean 'resumes'?)"),
    (GOOD + "promt: x\n", "promt: unknown key (did you mean 'prompt'?)"),
    (GOOD + "budgets:\n  repairs: -1\n", "budgets.repairs: expected a non-negative integer"),
    (GOOD + "timeouts:\n  phase: soon\n", "timeouts.phase: expected a duration"),
    (GOOD + "timeouts:\n  stall: 0s\n", "timeouts.stall: must be greater than zero"),
    ("name: p\nprompt: hi\nmodel: gpt4\n", "model: expected provider/model, got 'gpt4'"),
    ("name: p\nmodel: a/b\n", "prompt: missing required key (give prompt or prompt_file)"),
    ("name: p\nprompt: hi ${WHO}\n", "prompt: unknown variable ${WHO}"),
    (GOOD + "permissions:\n  default: maybe\n", "permissions.default:"),
    (GOOD + "permissions:\n  allow: bash\n", "permissions.allow:"),
    (GOOD + "directory: /no/such/dir\n", "directory: "),
    (GOOD + "server:\n  attach: http://10.0.0.1:4096\n", "server.attach:"),
    (GOOD + "done:\n  artifacts: notes.md\n", "done.artifacts:"),
    (GOOD + "done:\n  frontmatter:\n    required: [a]\n", "done.frontmatter"),
    (GOOD + "output:\n  transcript: runs/{nme}.jsonl\n", "output.transcript:"),
    (GOOD + "thinking: maybe\n", "thinking:"),
    ("- a\n- b\n", "expected a mapping"),
    ("name: p\nprompt: [unclosed\n", "line"),
    ("", "empty"),
    ("prompt: hi\n", "name:"),
    (GOOD + "opencode_config: [1]\n", "opencode_config:"),
    (GOOD + "vars:\n  X: [1]\n", "vars.X:"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_phase_file_exits_64_naming_file_and_key(capsys, tmp_path, text, message):
    code, err = run_cli(capsys, tmp_path, text)
    assert code == 64
    assert "\n" not in err
    assert err.startswith(f"runner: {tmp_path / 'p.yaml'}: ")
    assert message in err


# Every bad phase file the suite has (here and in test_phase_file), and an output folder that
# is a file: `check` must say what a run says.
UNDER_A_FILE = GOOD + "output:\n  transcript: s.json/{name}-{time}.jsonl\n"
EVERY_BAD_FILE = (
    [text for text, _ in BAD_FILES] + [body for _, body, _ in PHASE_BAD_FILES] + [UNDER_A_FILE]
)


@pytest.mark.parametrize("text", EVERY_BAD_FILE)
def test_check_says_what_a_run_says_of_every_bad_file(capsys, tmp_path, text):
    (tmp_path / "s.json").write_text("{}")  # a file where UNDER_A_FILE wants a folder
    (tmp_path / "p.yaml").write_text(text)
    path = str(tmp_path / "p.yaml")
    run_code, run_err, _ = run_cli_args(capsys, [path])
    check_code, check_err, check_out = run_cli_args(capsys, ["check", path])
    assert (run_code, check_code) == (64, 64)
    assert check_err == run_err
    assert "ok:" not in check_out


def test_an_output_folder_that_is_a_file_is_refused_by_check_and_run(capsys, tmp_path):
    (tmp_path / "s.json").write_text("{}")
    (tmp_path / "p.yaml").write_text(UNDER_A_FILE)
    for argv in (["check", str(tmp_path / "p.yaml")], [str(tmp_path / "p.yaml")]):
        code, err, _ = run_cli_args(capsys, argv)
        assert code == 64
        assert err.endswith(
            f"output.transcript: cannot write to {tmp_path / 's.json'} (File exists)"
        )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--var", "novalue"), "--var: expected K=V, got 'novalue'"),
        (("--model", "gpt4"), "--model: expected provider/model, got 'gpt4'"),
        (("--attach", "http://192.168.1.5:4096"), "--attach:"),
        (("--parallel", "0"), "--parallel: expected a positive integer, got '0'"),
        (("--json", "--plain"), "not allowed with argument"),
        (("--bogus",), "unrecognized arguments: --bogus"),
    ],
)
def test_bad_flag_exits_64_naming_the_flag(capsys, tmp_path, flags, message):
    code, err = run_cli(capsys, tmp_path, GOOD, *flags)
    assert code == 64
    assert "\n" not in err
    assert message in err


def test_several_phases_need_a_name_placeholder_in_transcript(capsys, tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD.replace("name: p", "name: q"))
    code = main([str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"), "--transcript", "t.jsonl"])
    assert code == 64
    assert "--transcript: several phases need a {name} placeholder" in capsys.readouterr().err


def test_missing_phase_file_as_a_subprocess(tmp_path):
    missing = tmp_path / "nope.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "runner", str(missing)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 64
    assert proc.stderr.strip().startswith(f"runner: {missing}: cannot read file")
    assert proc.stdout == ""


def test_unwritable_transcript_flag_exits_64(capsys, tmp_path):
    code, err = run_cli(capsys, tmp_path, GOOD, "--transcript", "/proc/nope/{name}.jsonl")
    assert code == 64
    assert err.startswith("runner: --transcript: cannot write to /proc/nope (")


def test_unwritable_output_in_the_file_exits_64_naming_the_key(capsys, tmp_path):
    text = GOOD + "output:\n  result: /proc/nope/{name}.json\n"
    code, err = run_cli(capsys, tmp_path, text)
    assert code == 64
    assert err.startswith(
        f"runner: {tmp_path / 'p.yaml'}: output.result: cannot write to /proc/nope"
    )


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_check_says_what_a_run_says_and_starts_nothing(capsys, tmp_path, text, message):
    ran, run_err = run_cli(capsys, tmp_path, text)
    checked, check_err, _ = run_cli_args(capsys, ["check", str(tmp_path / "p.yaml")])
    assert (checked, check_err) == (ran, run_err) == (64, run_err)
    assert message in check_err


def test_check_of_good_files_is_0_and_creates_no_folder(capsys, tmp_path):
    text = GOOD + "output:\n  transcript: out/deep/{name}.jsonl\n"
    (tmp_path / "p.yaml").write_text(text)
    example = PROJECT_ROOT / "examples" / "hello" / "phase.yaml"
    code, _, out = run_cli_args(capsys, ["check", str(tmp_path / "p.yaml"), str(example)])
    assert code == 0
    assert out.splitlines() == [
        f"ok: {tmp_path / 'p.yaml'} (phase p)",
        f"ok: {example} (phase hello)",
    ]
    assert not (tmp_path / "out").exists()


def test_check_reports_every_bad_file(capsys, tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD + "promt: x\n")
    (tmp_path / "b.yaml").write_text("name: b\n")
    paths = [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]
    code, err, _ = run_cli_args(capsys, ["check", *paths])
    assert code == 64
    assert len(err.splitlines()) == 2


def test_help_lists_the_exit_codes_an_example_and_the_commands(capsys):
    code, _, out = run_cli_args(capsys, ["--help"])
    assert code == 0
    shown = ("exit codes:", "64 bad arguments", "130 SIGINT", "example:", "runner check")
    for text in (*shown, "RUNNER_OPENCODE=PATH", "--skip-done"):
        assert text in out, out
