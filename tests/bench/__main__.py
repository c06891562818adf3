"""`python -m tests.bench` (`make bench`): run every benchmark and print its figures."""

from __future__ import annotations

import os
import platform
import sys
import time
from importlib.metadata import version

import pykka
from loguru import logger

from tests.bench import cli_rss, memory, pipeline, wall

BENCHMARKS = (
    ("1. Pipeline throughput (events/s; ratio to the plain loop)", pipeline.run),
    ("2. Peak memory against stream length (decoder + Tracker, tracemalloc)", memory.run),
    ("3. Wall time against `opencode run` (same mock script)", wall.run),
    ("4. Peak RSS of `python -m runner` against stream length (VmHWM)", cli_rss.run),
)


def out(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    logger.remove()  # the actors log nothing we want on the benchmark's output
    out(
        f"runner benchmarks: Python {platform.python_version()}, pykka {version('pykka')}, "
        f"{os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.machine()}; figures only, nothing is asserted"
    )
    try:
        for title, bench in BENCHMARKS:
            out(f"\n{title}")
            start = time.perf_counter()
            bench(out)
            out(f"  ({time.perf_counter() - start:.1f} s)")
    finally:
        pykka.ActorRegistry.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
