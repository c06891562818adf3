"""`python -m runner PHASE.yaml [more.yaml ...] [flags]`: run phases, print, exit honestly.

Exit codes (SPEC §3): 0 done, 1 failed, 2 incomplete (budgets, checks, stall, timeout),
64 bad arguments or phase file, 130 interrupted (SIGINT), 143 terminated (SIGTERM),
129 hung up (SIGHUP: the terminal went away).
Every phase file is validated before anything starts. Then the servers the phases need are
started at once, and only then are the heavy modules (pykka, requests, loguru) imported: the
servers boot while Python loads them.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from actors import Prespawned
from core.errors import PhaseFileError, RunnerError, ServerStartError
from runner import batch
from runner._mock import EmbeddedMock
from runner.phase import Overrides, PhaseSpec, load_phase
from runner.phase.derive import server_key, server_spec, sibling

if TYPE_CHECKING:
    from runner.api import Batch

EXIT_USAGE = 64
SIGNAL_EXIT = batch.SIGNAL_EXIT
SAFETY_NET_TIMEOUT = 5.0
EPILOG = """\
other commands:
  python -m runner check PHASE.yaml ...     validate phase files, start nothing (0 or 64)
  python -m runner show RUN.jsonl [--plain|--json|--thinking]
                                            print a recorded run as it was shown live

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
    """The command line of SPEC §2."""
    parser = _Parser(
        prog="python -m runner",
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


def configure_logging(verbose: bool, specs: list[PhaseSpec]) -> None:
    """loguru: stderr only with --verbose; always a debug log beside the first transcript."""
    from runner._logs import debug_log, logger

    logger.remove()
    if verbose:
        logger.add(sys.stderr, level="DEBUG", diagnose=False)
    path = Path(sibling(specs[0].output.transcript, ".debug.log"))
    path.parent.mkdir(parents=True, exist_ok=True)
    debug_log(str(path))


def main(argv: list[str] | None = None) -> int:
    """Parse, validate, run, and return the exit code (or `check` / `show`: runner.commands)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("check", "show") and not Path(argv[0]).is_file():
        from runner import commands

        return (commands.check_main if argv[0] == "check" else commands.show_main)(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        specs = load_all(args)
        run, skipped = batch.split_done(specs) if args.skip_done else (specs, [])
        mock = EmbeddedMock(run)
        if args.executor == "ray" and run:  # each node starts its own mock and servers
            from runner.ray_driver import prepare

            mock = prepare(run, args.ray_address)
    except (PhaseFileError, RunnerError) as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not run:  # everything is done already: start nothing
        return batch.finish(specs, skipped, [], json_lines=args.json)
    with mock:
        os.environ.update(mock.env)  # the early servers inherit it
        early = {} if args.executor == "ray" else prestart(run, args.parallel)
        try:
            return _run(args, run, early, mock, (specs, skipped))
        except KeyboardInterrupt:  # before its handler was installed (the heavy imports)
            return SIGNAL_EXIT[signal.SIGINT]
        finally:
            for prespawned in early.values():  # what no phase adopted
                prespawned.discard()


def _run(
    args: argparse.Namespace,
    specs: list[PhaseSpec],
    early: dict[Any, Prespawned],
    mock: EmbeddedMock,
    whole: tuple[list[PhaseSpec], list[batch.Skipped]],
) -> int:
    """Run the phases: the heavy imports happen here, while the early servers boot."""
    from runner import tuning
    from runner.api import Batch, run_phases  # PLC0415 is off for exactly this
    from runner.ray_driver import RayExecutor

    tuning.tune()
    configure_logging(args.verbose, specs)
    running = Batch()
    signalled = _install_signal_handlers(running)
    try:
        results = run_phases(
            specs,
            parallel=args.parallel,
            executor=RayExecutor(args.ray_address) if args.executor == "ray" else "local",
            batch=running,
            prespawned=early,
            mock=mock,
            mode=output_mode(args, sys.stdout),
            out=sys.stdout,
            verbose=args.verbose,
        )
    finally:
        _stop_leftovers()
    specs, skipped = whole
    return batch.finish(specs, skipped, results, signalled[0] if signalled else None, args.json)


def prestart(specs: list[PhaseSpec], parallel: int) -> dict[tuple[Any, ...], Prespawned]:
    """Start the servers the first `parallel` phases need, now; their actors adopt them later
    (the other phases' servers start when those phases do, as before). A server that cannot be
    started here is started again by its actor, which reports why it fails."""
    started: dict[tuple[Any, ...], Prespawned] = {}
    for spec in specs[:parallel]:
        key = server_key(spec)
        if spec.server.attach or key in started:
            continue
        try:
            started[key] = Prespawned.start(server_spec(spec, {}))
        except (ServerStartError, OSError):
            continue
    return started


def _stop_leftovers() -> None:
    """Safety net: no actor thread may keep the process alive once the phases are over."""
    import pykka

    from actors._worker import stop_actors
    from runner._logs import logger

    left = pykka.ActorRegistry.get_all()
    if left:
        logger.warning("stopping {} actor(s) left running", len(left))
        stop_actors(left, SAFETY_NET_TIMEOUT)


def _install_signal_handlers(batch: Batch) -> list[int]:
    """SIGINT, SIGTERM and SIGHUP cancel every phase (abort, stop the server, write the
    files)."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        return received

    def on_signal(number: int, _frame: object) -> None:
        if not received:
            received.append(number)
        # A repeated signal changes nothing: the cleanup it would cut short is bounded, and
        # dying now would leave opencode (in its own process group) behind.
        batch.cancel(f"interrupted by {signal.Signals(number).name}", SIGNAL_EXIT[number])

    for number in SIGNAL_EXIT:
        signal.signal(number, on_signal)
    return received
