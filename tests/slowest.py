"""`python -m tests.slowest REPORT.xml ... [--count N]`: the N slowest tests of JUnit reports.

`make test` runs the suite in two passes (the parallel one, then the tests marked `serial`
alone), each writing a JUnit report; this prints the slowest tests of both, as one list, at
the end (setup, call and teardown together, as the report times them).
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def slowest(reports: list[Path], count: int) -> list[tuple[float, str]]:
    """(seconds, test id) of the `count` slowest test cases in `reports`."""
    cases = []
    for report in reports:
        for case in ET.parse(report).iter("testcase"):  # noqa: S314 (our own pytest wrote it)
            name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
            cases.append((float(case.get("time") or 0), name))
    return sorted(cases, reverse=True)[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.slowest", description=__doc__)
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--count", type=int, default=15)
    args = parser.parse_args(argv)
    present = [report for report in args.reports if report.exists()]
    rows = slowest(present, args.count)
    print(f"\nthe {len(rows)} slowest tests (of {', '.join(map(str, present))}):")
    for seconds, name in rows:
        print(f"  {seconds:7.2f}s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
