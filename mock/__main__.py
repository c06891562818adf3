"""`python -m mock SCRIPT [--host H] [--port P] [--429-after N | --500-after N]`.

Prints `mock LLM listening on http://127.0.0.1:PORT/v1` once it accepts connections and
serves until SIGINT or SIGTERM (exit 0). A bad script or flag prints one line on stderr,
`mock: <file>: <path>: <problem>`, and exits 64 (EX_USAGE); a port that cannot be bound
exits 69 (EX_UNAVAILABLE).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from mock._model import ScriptError
from mock._script import load_script
from mock._server import MockLLM

EX_USAGE = 64
EX_UNAVAILABLE = 69
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and the usage exit code."""

    def error(self, message: str) -> NoReturn:
        """Print `mock: <message>` and exit 64."""
        self.exit(EX_USAGE, f"mock: {message}\n")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _parser() -> _Parser:
    parser = _Parser(prog="python -m mock", description="Scripted OpenAI-compatible LLM.")
    parser.add_argument("script", help="a .json, .yaml or .yml script")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (127.0.0.0/8)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    blanket = parser.add_mutually_exclusive_group()
    blanket.add_argument(
        "--429-after",
        dest="after_429",
        type=_count,
        metavar="N",
        help="answer 429 (Retry-After: 1) to every agent request after N",
    )
    blanket.add_argument(
        "--500-after",
        dest="after_500",
        type=_count,
        metavar="N",
        help="answer 500 (Retry-After: 1) to every agent request after N",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the mock until SIGINT/SIGTERM; returns the exit code."""
    args = _parser().parse_args(argv)
    error_after = None
    if args.after_429 is not None:
        error_after = (429, args.after_429)
    elif args.after_500 is not None:
        error_after = (500, args.after_500)
    try:
        mock = MockLLM(
            load_script(args.script), host=args.host, port=args.port, error_after=error_after
        )
    except (ScriptError, ValueError) as exc:
        print(f"mock: {exc}", file=sys.stderr)
        return EX_USAGE
    # Block the stop signals before any thread exists, so threads inherit the mask and
    # only `sigwait` below receives them (no handler races with the serving threads).
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        mock.start()
    except OSError as exc:
        print(f"mock: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    try:
        print(f"mock LLM listening on {mock.url}", flush=True)
        signal.sigwait(_STOP_SIGNALS)
    finally:
        mock.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
