"""`python -m runner check PHASE.yaml ...`: validate phase files exactly as a run does (the
same flags, the same one-line errors) and start nothing: no server, no output folder created.
Exit 0, or 64 at the first bad file (every file is checked and reported)."""

from __future__ import annotations

import argparse
import sys

from core.errors import PhaseFileError
from runner._mock import EmbeddedMock
from runner.cli.args import EXIT_USAGE, PROG, batch_rules, build_parser, load_all

__all__ = ["check_main"]


def check_main(argv: list[str]) -> int:
    """`check`: validate each phase file; 0 when all are good, else 64."""
    parser = build_parser()
    parser.prog = f"{PROG} check"
    args = parser.parse_args(argv)
    code = 0
    specs = []
    try:
        batch_rules(args)
    except PhaseFileError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path in args.phases:
        try:
            (spec,) = load_all(argparse.Namespace(**{**vars(args), "phases": [path]}), create=False)
        except PhaseFileError as exc:
            print(f"runner: {exc}", file=sys.stderr)
            code = EXIT_USAGE
        else:
            specs.append(spec)
            print(f"ok: {path} (phase {spec.name})")
    try:
        EmbeddedMock(specs)  # the rules of a whole run (one mock script)
    except PhaseFileError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    return code
