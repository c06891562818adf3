"""The command line's flags and what they demand: one parser for running and `check`, the
phase files loaded and validated before anything starts, and the output mode."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn, TextIO

from core.errors import PhaseFileError
from runner import batch
from runner.phase import Overrides, PhaseSpec, load_phase

EXIT_USAGE = 64
# How the user called us: the console script (`runner`, from `pip install`) or `python -m runner`.
PROG = "runner" if os.path.basename(sys.argv[0]) == "runner" else "python -m runner"
EPILOG = """\
other commands:
  python -m runner check PHASE.yaml ...     validate phase files, start nothing (0 or 64)
  python -m runner show RUN.jsonl [--plain|--json|--thinking]
                                            print a recorded run as it was shown live
  python -m runner up [--spare N --max-servers N --idle-expiry S]
                                            start the pool daemon of warm servers; runs
                                            then lease from it (docs/pool.md)
  python -m runner status [--json]          its servers: version, phases, memory, leases
  python -m runner down [--force]           stop it and every server it started

exit codes:
  0 done   1 failed (server, stream, provider error)   2 incomplete, stalled or timed out
  64 bad arguments or phase file   130 SIGINT   143 SIGTERM   129 SIGHUP

environment:
  RUNNER_OPENCODE=PATH   the opencode binary of phases without server.opencode (1.14.48+)

example:
  python -m runner examples/hello/phase.yaml --plain
  python -m runner phases/*.yaml --parallel 3 --json > events.ndjson
  python -m runner phases/*.yaml --parallel 3 --skip-done   # again: what is not done yet
  python -m runner phases/*.yaml --executor ray --ray-address HEAD:6379 --parallel 32
"""


class _Parser(argparse.ArgumentParser):
    """argparse that fails with one line and exit code 64."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"runner: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line: the phase files and the overrides of docs/phase-file.md."""
    parser = _Parser(
        prog=PROG,
        description=__doc__.splitlines()[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("phases", nargs="+", metavar="PHASE.yaml", help="phase files to run")
    parser.add_argument(
        "--parallel",
        type=_positive,
        default=1,
        metavar="N",
        help="run up to N phases at once on one shared server",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where phases run: this process (default) or a Ray cluster (make setup-ray)",
    )
    parser.add_argument(
        "--ray-address", metavar="ADDR", help="the Ray cluster to join (default: $RAY_ADDRESS)"
    )
    parser.add_argument(
        "--slots-per-node",
        metavar="N",
        type=_positive,
        help="phases at once on a Ray node without `runner_phase` (default: its CPUs)",
    )
    parser.add_argument("--model", help="override the model (provider/model)")
    parser.add_argument("--agent", help="override the agent")
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="K=V",
        help="set a prompt variable (repeatable)",
    )
    parser.add_argument(
        "--thinking", action="store_true", default=None, help="show the agent's reasoning"
    )
    _add_server_and_output_flags(parser)
    return parser


def _add_server_and_output_flags(parser: argparse.ArgumentParser) -> None:
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print NDJSON events")
    output.add_argument("--plain", action="store_true", help="no colours or styles")
    parser.add_argument("--attach", metavar="URL", help="use a running opencode server")
    parser.add_argument(
        "--mock", metavar="SCRIPT", help="serve the phases from the scripted mock LLM"
    )
    parser.add_argument(
        "--isolate",
        action="store_true",
        default=None,
        help="give the server a fresh data folder for the run (removed afterwards)",
    )
    parser.add_argument(
        "--recycle-after",
        metavar="N",
        type=_positive,
        help="a server takes no new phase once it served N (server.recycle_after)",
    )
    parser.add_argument(
        "--recycle-rss",
        metavar="MIB",
        type=float,
        help="nor once it holds MIB of memory (server.recycle_rss_mib)",
    )
    parser.add_argument("--transcript", metavar="PATH", help="where to write the transcript")
    parser.add_argument(
        "--skip-done",
        action="store_true",
        help="leave out phases whose latest result says done (nothing starts if all are)",
    )
    parser.add_argument("--verbose", action="store_true", help="diagnostics on stderr")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def batch_rules(args: argparse.Namespace) -> None:
    """What the flags demand of a whole batch; `PhaseFileError` if they are wrong."""
    if args.transcript and len(args.phases) > 1 and "{name}" not in args.transcript:
        raise PhaseFileError(
            f"--transcript: several phases need a {{name}} placeholder, got {args.transcript!r}"
        )
    if args.ray_address and args.executor != "ray":
        raise PhaseFileError(f"--ray-address {args.ray_address}: needs --executor ray")
    if args.slots_per_node and args.executor != "ray":
        raise PhaseFileError(f"--slots-per-node {args.slots_per_node}: needs --executor ray")


def load_all(args: argparse.Namespace, *, create: bool = True) -> list[PhaseSpec]:
    """Validate every phase file before anything starts (`create`: make the output folders;
    else only check that they could be made)."""
    batch_rules(args)
    overrides = Overrides(
        model=args.model,
        agent=args.agent,
        vars=tuple(args.var),
        thinking=args.thinking,
        attach=args.attach,
        transcript=args.transcript,
        mock=args.mock,
        isolate=args.isolate,
        recycle_after=args.recycle_after,
        recycle_rss_mib=args.recycle_rss,
    )
    specs = [load_phase(path, overrides=overrides, environ=os.environ) for path in args.phases]
    for spec in specs:
        batch.prepare_outputs(spec, flag="--transcript" if args.transcript else None, create=create)
    return specs


def output_mode(args: argparse.Namespace, stream: TextIO) -> str:
    """`json`, `plain` (asked for, not a terminal, or NO_COLOR) or `rich`."""
    if args.json:
        return "json"
    if args.plain or not stream.isatty() or os.environ.get("NO_COLOR"):
        return "plain"
    return "rich"
