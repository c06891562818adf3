"""Benchmarks (`make bench`, `python -m tests.bench`): figures and ratios, never asserted.

- `pipeline`: event-pipeline throughput on a large recorded stream against a plain loop.
- `memory`: tracemalloc peak of decoder + tracker against stream length.
- `wall`: wall time of `python -m runner` against `opencode run` on the same mock script.

No file here is named `test_*.py`, and `conftest.py` keeps pytest out of this folder.
"""
