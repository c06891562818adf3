"""`python -m runner PHASE.yaml [more.yaml ...] [flags]`: run phases, print, exit honestly.

Exit codes (README, "Running phases"): 0 done, 1 failed, 2 incomplete (budgets, checks, stall,
timeout),
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
from typing import TYPE_CHECKING, Any

from actors import Prespawned
from core.errors import PhaseFileError, RunnerError
from runner import batch
from runner._mock import EmbeddedMock
from runner.cli.args import EXIT_USAGE, build_parser, load_all, output_mode
from runner.phase import PhaseSpec
from runner.phase.derive import sibling
from runner.servers.keys import prestart
from runner.servers.lease import prelease

if TYPE_CHECKING:
    from runner.api import Batch

SIGNAL_EXIT = batch.SIGNAL_EXIT
SAFETY_NET_TIMEOUT = 5.0
COMMANDS = ("check", "show", "up", "status", "down")


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
    """Parse, validate, run, and return the exit code (or run `check` or `show`)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS and not Path(argv[0]).is_file():
        return _command(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    try:
        specs = load_all(args)
        run, skipped = batch.split_done(specs) if args.skip_done else (specs, [])
        mock = EmbeddedMock(run)
        if args.executor == "ray" and run:  # each node starts its own mock and servers
            from runner.executors.ray.driver import prepare

            mock = prepare(run, args.ray_address)
    except (PhaseFileError, RunnerError) as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not run:  # everything is done already: start nothing
        return batch.finish(specs, skipped, [], json_lines=args.json)
    with mock:
        os.environ.update(mock.env)  # the early servers inherit it
        leases, leased = None, {}
        if args.executor != "ray":  # warm servers from the pool daemon, if it runs
            script = None if mock.script is None else str(Path(mock.script).resolve())
            leases, leased = prelease(run, args.parallel, script, _say)
        early = {} if args.executor == "ray" else prestart(run, args.parallel, leased)
        try:
            return _run(args, run, early, mock, (specs, skipped), lent=(leases, leased))
        except KeyboardInterrupt:  # before its handler was installed (the heavy imports)
            return SIGNAL_EXIT[signal.SIGINT]
        finally:
            for prespawned in early.values():  # what no phase adopted
                prespawned.discard()
            if leases is not None:  # what no phase's pool gave back (an early interrupt)
                leases.close()


def _run(
    args: argparse.Namespace,
    specs: list[PhaseSpec],
    early: dict[Any, Prespawned],
    mock: EmbeddedMock,
    whole: tuple[list[PhaseSpec], list[batch.Skipped]],
    *,
    lent: tuple[Any, dict[Any, Any]],
) -> int:
    """Run the phases: the heavy imports happen here, while the early servers boot."""
    from runner import tuning
    from runner.api import Batch, run_phases  # PLC0415 is off for exactly this
    from runner.executors.ray.driver import RayExecutor

    tuning.tune()
    configure_logging(args.verbose, specs)
    running = Batch()
    signalled = _install_signal_handlers(running)
    try:
        results = run_phases(
            specs,
            parallel=args.parallel,
            executor=(
                RayExecutor(args.ray_address, slots_per_node=args.slots_per_node)
                if args.executor == "ray"
                else "local"
            ),
            batch=running,
            prespawned=early,
            mock=mock,
            leases=lent[0],
            leased=lent[1],
            mode=output_mode(args, sys.stdout),
            out=sys.stdout,
            verbose=args.verbose,
        )
    finally:
        _stop_leftovers()
    specs, skipped = whole
    return batch.finish(specs, skipped, results, signalled[0] if signalled else None, args.json)


def _command(name: str, argv: list[str]) -> int:
    """`check`, `show`, or the pool daemon's `up`, `status` and `down`."""
    if name == "check":
        from runner.cli.check import check_main

        return check_main(argv)
    if name == "show":
        from runner.cli.show import show_main

        return show_main(argv)
    from runner.cli.pool import pool_main

    return pool_main(name, argv)


def _say(line: str) -> None:
    print(f"runner: {line}", file=sys.stderr, flush=True)


def _stop_leftovers() -> None:
    """Safety net: no actor thread may keep the process alive once the phases are over."""
    import pykka

    from actors.worker import stop_actors
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
