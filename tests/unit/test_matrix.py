"""The version matrix's report: JUnit cases read back, and the table it prints."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from core.opencode_versions import TESTED
from tests import matrix
from tests.helpers import PROJECT_ROOT
from tests.matrix import outcomes, table

pytestmark = pytest.mark.timeout(10)

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="tests.e2e.test_cli" name="test_a" time="1.0"/>
<testcase classname="tests.e2e.test_cli" name="test_b" time="1.0"><failure message="x"/></testcase>
<testcase classname="tests.parity.test_parity" name="test_c[basic]" time="1.0"/>
<testcase classname="tests.parity.test_parity" name="test_d" time="0"><skipped/></testcase>
</testsuite></testsuites>
"""


def test_junit_cases_are_read_as_passed_failed_or_skipped(tmp_path):
    report = tmp_path / "r.xml"
    report.write_text(REPORT)
    assert outcomes(report) == {
        "tests.e2e.test_cli::test_a": "passed",
        "tests.e2e.test_cli::test_b": "failed",
        "tests.parity.test_parity::test_c[basic]": "passed",
        "tests.parity.test_parity::test_d": "skipped",
    }


def test_the_table_counts_passes_per_file_and_names_each_failure(tmp_path):
    report = tmp_path / "r.xml"
    report.write_text(REPORT)
    cases = outcomes(report)
    lines = table({"1.14.48": cases, "1.18.33": dict.fromkeys(cases, "passed")})
    assert lines[0].split() == ["test", "file", "1.14.48", "1.18.33"]
    assert lines[1].split() == ["tests.e2e.test_cli", "1/2", "2/2"]
    assert lines[2].split() == ["tests.parity.test_parity", "1/1", "2/2"]
    assert lines[3:] == ["FAILED on 1.14.48: tests.e2e.test_cli::test_b"]


def test_the_makefile_installs_the_versions_the_adapter_names():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    listed = re.search(r"^MATRIX_VERSIONS := (.+)$", makefile, re.MULTILINE).group(1).split()
    pinned = re.search(r"^OPENCODE_VERSION := (.+)$", makefile, re.MULTILINE).group(1)
    second = re.search(r"^OPENCODE2_VERSION := (.+)$", makefile, re.MULTILINE).group(1)
    assert (*listed, pinned, second) == TESTED


def test_a_version_whose_pytest_wrote_no_report_is_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(matrix, "OUT", tmp_path)
    monkeypatch.setattr(matrix, "binary", lambda _version: Path(sys.executable))
    monkeypatch.setattr(matrix, "reported_version", lambda _path: "9.9.9")
    (tmp_path / "9.9.9.xml").write_text(REPORT)  # an older run's: never read as this one's
    assert matrix.run_version("9.9.9", ("--no-such-pytest-flag",), []) == {
        "pytest (exit 4)": "failed"
    }
