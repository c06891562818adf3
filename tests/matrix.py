"""`make test-matrix`: the CLI end-to-end tests and the parity scripts against every opencode
version the runner supports, and a table of what passed (version x test file).

Each version's platform binary lives in `.opencode-matrix/VERSION/` (`make setup-matrix`); the
pinned one is `node_modules`', and 2.1.2's is `.opencode2/`'s (`make setup`). The tests pick
the binary up from `$RUNNER_OPENCODE`, which the runner and the parity harness read for phases
that name none. Results, per test, go to `runs/matrix/results.json`; the exit code is 1 when
any test failed on any version.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from core.opencode_versions import PINNED, TESTED, capabilities

ROOT = Path(__file__).resolve().parent.parent
MATRIX_DIR = ROOT / ".opencode-matrix"
OUT = ROOT / "runs" / "matrix"
TESTS = (
    "tests/e2e/test_cli.py",
    "tests/e2e/test_cli_commands.py",
    "tests/e2e/test_cli_faults.py",
    "tests/e2e/test_cli_guards.py",
    "tests/e2e/test_cli_structured.py",
    "tests/e2e/test_permissions_enforced.py",
    "tests/e2e/test_pool_daemon.py",
    "tests/parity",
)
OPENCODE2 = ROOT / ".opencode2" / "node_modules" / ".bin" / "opencode2"


def binary(version: str) -> Path:
    """The opencode binary of `version`: the pinned one, or the matrix folder's."""
    if version == PINNED:
        return ROOT / "node_modules" / ".bin" / "opencode"
    if capabilities(version).protocol == 2:
        if not OPENCODE2.exists():
            raise SystemExit(f"test-matrix: opencode {version} is not installed: make setup")
        return OPENCODE2
    found = sorted((MATRIX_DIR / version / "node_modules").glob("opencode-*/bin/opencode"))
    if not found:
        raise SystemExit(f"test-matrix: opencode {version} is not installed: make setup-matrix")
    return found[0]


def reported_version(path: Path) -> str:
    """The version a binary says it is (`1.18.33`; 2.x says `opencode v2.1.2`)."""
    done = subprocess.run(
        [str(path), "--version"], check=True, capture_output=True, text=True, timeout=60
    )
    return capabilities(done.stdout.strip()).version


def run_version(version: str, tests: tuple[str, ...], extra: list[str]) -> dict[str, str]:
    """Run the tests against one version: {test id: passed|failed|skipped}."""
    path = binary(version)
    if (seen := reported_version(path)) != version:
        raise SystemExit(f"test-matrix: {path} says it is {seen!r}, not {version}")
    report = OUT / f"{version}.xml"
    report.unlink(missing_ok=True)  # never read an older run's report as this one's
    argv = [sys.executable, "-m", "pytest", "-p", "runner.testing", "-p", "no:cacheprovider"]
    argv += ["-q", f"--junitxml={report}", *tests, *extra]
    env = {**os.environ, "RUNNER_OPENCODE": str(path)}
    started = time.monotonic()
    print(f"test-matrix: opencode {version} ({path.relative_to(ROOT)})", flush=True)
    code = subprocess.run(argv, cwd=ROOT, env=env, check=False).returncode
    print(f"test-matrix: opencode {version} took {time.monotonic() - started:.0f}s", flush=True)
    if not report.exists():  # pytest stopped before any test (a usage error, a crash)
        return {f"pytest (exit {code})": "failed"}
    return outcomes(report)


def outcomes(report: Path) -> dict[str, str]:
    """Each test case of a JUnit report and how it ended."""
    results = {}
    # The report is pytest's own, written a moment ago by this run.
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        states = {child.tag for child in case}
        if states & {"failure", "error"}:
            results[name] = "failed"
        elif "skipped" in states:
            results[name] = "skipped"
        else:
            results[name] = "passed"
    return results


def table(results: dict[str, dict[str, str]]) -> list[str]:
    """Lines of the version x test-file table, then every failed test by name."""
    versions = list(results)
    files: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for version, cases in results.items():
        for name, state in cases.items():
            cell = files[name.split("::")[0]][version]
            cell[0] += state == "passed"
            cell[1] += state != "skipped"
    width = max(len(name) for name in files) if files else 10
    lines = [f"{'test file':<{width}}  " + "  ".join(f"{v:>10}" for v in versions)]
    for name in sorted(files):
        cells = (f"{files[name][v][0]}/{files[name][v][1]}" for v in versions)
        lines.append(f"{name:<{width}}  " + "  ".join(f"{cell:>10}" for cell in cells))
    for version, cases in results.items():
        lines += [f"FAILED on {version}: {name}" for name, s in cases.items() if s == "failed"]
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    ours, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m tests.matrix", description=__doc__, epilog="after --: pytest's arguments"
    )
    parser.add_argument("versions", nargs="*", default=list(TESTED), help="versions to test")
    parser.add_argument("--tests", nargs="+", default=list(TESTS), help="test paths to run")
    args = parser.parse_args(ours)
    OUT.mkdir(parents=True, exist_ok=True)
    results = {v: run_version(v, tuple(args.tests), extra) for v in args.versions}
    (OUT / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print("\n".join(table(results)))
    failed = any(state == "failed" for cases in results.values() for state in cases.values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
