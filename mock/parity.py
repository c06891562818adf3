"""`python -m mock.parity SCRIPT [SCRIPT ...] [--keep] [--opencode PATH] [--timeout S]`.

The parity harness (README, "Parity with `opencode run`"). Each script runs twice, side by
side: through
`opencode run --format json` (stdin closed, a title, a timeout) and through
`python -m runner --json`, each on a fresh copy of one fixture project, with a HOME of its own,
against a `MockLLM` of its own serving the script. Both outputs are normalised
(`mock._parity_normalise`) and compared: equal prints one line, different prints a unified diff.
Exit 0 when every script is equal, 1 when one is not, 64 for a bad script or flag.

A parity script is a mock script (`mock._script`) that may add `opencode_config`, opencode
configuration both runs get (`{"permission": {"bash": "ask"}}`, say), and `thinking: true`
(`opencode run --thinking`, the phase's `thinking`: reasoning is printed). The runner's phase
holds its agent to what `opencode run` allows: what opencode allows (`permissions.default:
allow`), but not what the configuration makes it ask for (`permissions.deny`, which
`opencode run` rejects), rejected silently (`permissions.feedback: null`) as `opencode run`
does. It never resumes or repairs, and leaves provider retries to opencode: only the events are
compared, never the verdict.

On opencode 2.x (told by `--version`) the other side is `opencode run --standalone` (without it,
2.x's `run` starts the user's background service), whose rejections carry a message of their
own (`REJECTED_2`, which the runner's phase sends too), and the comparison first takes 2.x
`run`'s own shapes to the runner's (`mock._parity_normalise.SHAPES_2`).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from mock._config import opencode_provider_config
from mock._model import ScriptError
from mock._parity_normalise import dumped, normalise, parse
from mock._script import load_script, parse_script
from mock._server import MockLLM
from mock.env import opencode_env

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "parity" / "fixture"
# Both sides search files with ripgrep (sorted by modification time) rather than opencode's fff
# index, whose grep has a 1.5 s time budget and orders files by its own index and frecency:
# under load the two runs of one script listed grep's matches in different orders.
DETERMINISTIC_ENV = {"OPENCODE_DISABLE_FFF": "1"}
FIXTURE_TIME = 1_700_000_000  # the copies' files get this time, one second apart (`_stamp`)
# `$RUNNER_OPENCODE` names another binary, as it does for the runner (`make test-matrix`).
OPENCODE = Path(os.environ.get("RUNNER_OPENCODE") or ROOT / "node_modules" / ".bin" / "opencode")
# One word: `opencode run` quotes a message argument that holds spaces before sending it, which
# would make the two conversations differ by two characters.
PROMPT = "Proceed."
MODEL = "test/mock-model"
EX_USAGE = 64


@dataclass(frozen=True, slots=True)
class Side:
    """One tool's run of a script: its output lines, exit code, project and time."""

    tool: str
    lines: tuple[dict[str, Any], ...]
    code: int | None  # None: it timed out
    places: dict[str, str]  # this run's own paths and URLs -> their names in the comparison
    seconds: float
    stderr: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """One script's comparison."""

    name: str
    sides: tuple[Side, Side]
    diff: tuple[str, ...]

    @property
    def equal(self) -> bool:
        """True when the normalised outputs are the same."""
        return not self.diff


@dataclass(frozen=True, slots=True)
class Job:
    """What both runs of one script share."""

    script: Any
    config: dict[str, Any]  # opencode configuration besides the mock provider
    thinking: bool
    opencode: Path
    timeout: float
    line: int = 1  # the opencode line: 1 (opencode-ai) or 2 (@opencode/cli)


# What 2.x's `opencode run` says when it rejects an ask (it rejects every one): it rejects with
# this message, and the loop goes on (1.x rejected silently, and the turn ended).
REJECTED_2 = (
    "This non-interactive run cannot ask the user for permission, so the request was rejected. "
    "Continue without this action."
)


def opencode_line(opencode: Path) -> int:
    """2 for an opencode that says `opencode v2.…`, else 1 (the mock imports no runner code)."""
    done = subprocess.run(
        [str(opencode), "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    match = re.search(r"(\d+)\.\d+\.\d+", done.stdout)
    return 2 if match is not None and int(match.group(1)) >= 2 else 1


def compare(path: Path, *, workdir: Path, opencode: Path, timeout: float) -> Verdict:
    """Run one parity script through both tools (at once) and compare their outputs."""
    script, config, thinking = _load(path)
    job = Job(script, config, thinking, opencode, timeout, opencode_line(opencode))
    with ThreadPoolExecutor(max_workers=len(COMMANDS)) as pool:
        # paths of one length: the model sees the project's path, and the mock counts tokens
        runs = [
            pool.submit(_side, tool, job, workdir / f"side-{number}")
            for number, tool in enumerate(COMMANDS)
        ]
        theirs, ours = (run.result(timeout=timeout + 60) for run in runs)
    expected = dumped(normalise(theirs.lines, theirs.places, line=job.line))
    got = dumped(normalise(ours.lines, ours.places, line=job.line))
    diff = [*difflib.unified_diff(expected, got, "opencode run", "runner", lineterm="")]
    return Verdict(name=path.name, sides=(theirs, ours), diff=(*_broken(theirs, ours), *diff))


def _broken(theirs: Side, ours: Side) -> list[str]:
    """What makes a comparison worthless, whatever the diff says."""
    problems = [f"! {side.tool} timed out" for side in (theirs, ours) if side.code is None]
    if not theirs.lines:
        problems.append("! opencode run printed nothing: there is nothing to compare with")
    if not any(line.get("type") == "runner.result" for line in ours.lines):
        problems.append("! the runner printed no runner.result line: it did not finish")
    return problems


def _load(path: Path) -> tuple[Any, dict[str, Any], bool]:
    """The mock script, the opencode configuration both runs get, and `thinking`."""
    data = json.loads(path.read_text()) if path.suffix == ".json" else None
    if isinstance(data, dict) and ({"opencode_config", "thinking"} & data.keys()):
        config, thinking = data.pop("opencode_config", {}), data.pop("thinking", False)
        return parse_script(data, str(path)), config, bool(thinking)
    return load_script(path), {}, False


def _stamp(project: Path) -> None:
    """Give every file of a copy the same, distinct modification time on both sides: opencode's
    grep tool lists files newest first, and files checked out in the same instant tie (their
    order then changed from one run to the next)."""
    files = sorted(path for path in project.rglob("*") if path.is_file())
    for index, path in enumerate(files):
        stamp = FIXTURE_TIME + index
        os.utime(path, (stamp, stamp))


def _side(tool: str, job: Job, root: Path) -> Side:
    project = root / "project"
    shutil.copytree(FIXTURE, project)
    _stamp(project)
    subprocess.run(["git", "init", "-q", str(project)], check=True)  # noqa: S607 (git on PATH)
    env = {**opencode_env(root), **DETERMINISTIC_ENV}
    with MockLLM(job.script) as mock:
        config = {**opencode_provider_config(mock.url), **job.config}
        argv, cwd, extra = COMMANDS[tool](job, config, project, root)
        started = time.perf_counter()
        try:
            done = subprocess.run(
                argv,
                check=False,
                cwd=cwd,
                env={**env, **extra},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=job.timeout,
            )
            code, stdout, stderr = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as exc:
            code, stdout, stderr = None, _text(exc.stdout), _text(exc.stderr)
        (root / "stdout.jsonl").write_text(stdout)  # for --keep
        (root / "stderr.txt").write_text(stderr)
        places = {str(project): "<project>", mock.url.removesuffix("/v1"): "<mock>"}
    seconds = time.perf_counter() - started
    return Side(tool, tuple(parse(stdout)), code, places, seconds, stderr)


Command = tuple[list[str], Path, dict[str, str]]


def _opencode_run(job: Job, config: dict[str, Any], project: Path, _root: Path) -> Command:
    argv = [str(job.opencode), "run", "--format", "json", "-m", MODEL, "--title", "parity"]
    argv += ["--thinking"] if job.thinking else []
    # 2.x: a private server of its own (without it, `run` starts the user's background service)
    argv += ["--standalone"] if job.line == 2 else []
    # opencode takes its directory from PWD, not from the process's cwd
    extra = {"OPENCODE_CONFIG_CONTENT": json.dumps(config), "PWD": str(project)}
    return [*argv, PROMPT], project, extra


def _runner_run(job: Job, config: dict[str, Any], project: Path, root: Path) -> Command:
    phase = {
        "name": "parity",
        "prompt": PROMPT,
        "model": MODEL,
        "directory": str(project),
        "opencode_config": config,
        # opencode's own retrying is compared: the runner's budget never ends it first (2.x
        # retries a 500 ten times, more than the default 8)
        "budgets": {"resumes": 0, "repairs": 0, "provider_retries": 50},
        # `opencode run` rejects whatever opencode asks for (silently on 1.x), allows the rest
        "permissions": {
            "default": "allow",
            "deny": _denied(job),
            "feedback": REJECTED_2 if job.line == 2 else None,
        },
        "thinking": job.thinking,
        "timeouts": {"phase": f"{job.timeout:g}s"},
        "server": {"opencode": str(job.opencode)},
    }
    path = root / "phase.json"  # JSON is YAML: the runner reads it as a phase file
    path.write_text(json.dumps(phase))
    return [sys.executable, "-m", "runner", str(path), "--json"], ROOT, {}


COMMANDS = {"opencode run": _opencode_run, "runner": _runner_run}


def _denied(job: Job) -> list[str]:
    """What the runner's phase denies: the permissions the configuration makes opencode ask for
    (`{"bash": "ask"}`), and `task` when the script starts no subagent (a phase that restricts
    anything must deny it on opencode before 1.17, which cannot hold a subagent to the rules)."""
    rules = job.config.get("permission")
    asked = [n for n, a in rules.items() if a == "ask"] if isinstance(rules, dict) else []
    if asked and not job.script.subagents:
        asked.append("task")
    return sorted(asked)


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


def report(verdict: Verdict) -> str:
    """One line when equal; the diff (and what each tool said on stderr) when not."""
    times = ", ".join(f"{side.tool} {side.seconds:.1f} s" for side in verdict.sides)
    codes = " / ".join(f"exit {side.code}" for side in verdict.sides)
    if verdict.equal:
        return f"parity {verdict.name}: equal ({times}; {codes})"
    stderr = [f"--- {s.tool} stderr:\n{s.stderr.strip()[-2000:]}" for s in verdict.sides]
    return "\n".join(
        [f"parity {verdict.name}: DIFFERENT ({times}; {codes})", *verdict.diff, *stderr]
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EX_USAGE, f"mock.parity: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Compare every script given; 0 when all are equal."""
    parser = _Parser(prog="python -m mock.parity", description=__doc__.splitlines()[0])
    parser.add_argument("scripts", nargs="+", type=Path, metavar="SCRIPT")
    parser.add_argument("--keep", action="store_true", help="keep the projects and outputs")
    parser.add_argument("--opencode", type=Path, default=OPENCODE, help="the opencode binary")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per run")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="parity-"))
    equal = True
    try:
        for number, path in enumerate(args.scripts):
            try:
                verdict = compare(
                    path,
                    workdir=workdir / str(number),
                    opencode=args.opencode,
                    timeout=args.timeout,
                )
            except (ScriptError, OSError, ValueError) as exc:
                print(f"mock.parity: {path}: {exc}", file=sys.stderr)
                return EX_USAGE
            print(report(verdict), flush=True)
            equal = equal and verdict.equal
    finally:
        if args.keep:
            print(f"kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
