"""The command line: `python -m runner PHASE.yaml ...` (`run`), `check` and `show`; the flags
in `args`."""

from runner.cli.run import main

__all__ = ["main"]
