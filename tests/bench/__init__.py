"""Benchmarks (`make bench`, `python -m tests.bench [--smoke] [--out PATH]`): figures and
ratios of what a user runs, side by side in one run, written to `bench/results.json`; nothing
is asserted.

- `wall`: `python -m runner --json` against `opencode run --format json` on one mock script.
- `pipeline`: the product's event pipeline against a bare loop, on one stream served over
  loopback by `sse_server` (plus in-memory rows: our SSE decoder, sseclient-py, the tracker).
- `latency`: a text delta leaving the server to its text printed, at a steady rate.
- `cli_rss`: peak RSS of `python -m runner` for a short and a long streamed phase.
- `memory`: heap of decoder + tracker against stream length (what the RSS is made of).

`harness` wires one phase's actors as the supervisor does; `stream` builds the streams;
`machine` says what it all ran on. No file here is named `test_*.py`, and `conftest.py` keeps
pytest out of this folder; `tests/e2e/test_bench_smoke.py` runs `--smoke` in `make test`.
"""
