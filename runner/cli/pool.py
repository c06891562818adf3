"""`python -m runner up | status | down`: the pool daemon of warm opencode servers.

    python -m runner up          # start it in the background (its log: the state folder)
    python -m runner status      # its servers: version, phases served, memory, lease, age
    python -m runner down        # stop it and every server it started

While it runs, `python -m runner PHASE.yaml` takes a warm server from it (the banner says so);
see `runner.servers.daemon` for what it keeps and when it lets servers go.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

from actors.process import wait_gone
from core.errors import PhaseFileError
from runner.cli.args import EXIT_USAGE, PROG
from runner.phase import load_phase
from runner.servers.lease import (
    Leases,
    PoolClient,
    PoolGoneError,
    PoolRefusedError,
    state_dir,
)

UP_TIMEOUT = 20.0  # the daemon's ready line
DOWN_TIMEOUT = 60.0  # its servers' stops (30 s each at most, in parallel)


def pool_main(command: str, argv: list[str]) -> int:
    """Run `up`, `status` or `down`; the exit code."""
    args = _parser(command).parse_args(argv)
    if command == "up":
        return _foreground(args) if args.foreground else _up(args)
    if command == "status":
        return _status(args)
    return _down(force=args.force)


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{PROG} {command}", description=__doc__.splitlines()[0])
    if command == "up":
        parser.add_argument(
            "phases",
            nargs="*",
            metavar="PHASE.yaml",
            help="start the servers these phases need now, warm for their runs",
        )
        parser.add_argument(
            "--spare",
            type=int,
            default=1,
            metavar="N",
            help="idle warm servers kept ready per configuration (0: none)",
        )
        parser.add_argument(
            "--max-servers",
            type=int,
            default=4,
            metavar="N",
            help="servers at most, leased or idle (default 4)",
        )
        parser.add_argument(
            "--idle-expiry",
            type=float,
            default=900.0,
            metavar="SECONDS",
            help="an idle server stops after this long (default 900)",
        )
        parser.add_argument(
            "--recycle-after",
            type=int,
            default=100,
            metavar="N",
            help="a server stops once it served N phases (default 100)",
        )
        parser.add_argument(
            "--recycle-rss",
            type=float,
            default=768.0,
            metavar="MIB",
            help="or once it holds MIB of memory (default 768)",
        )
        parser.add_argument(
            "--foreground",
            action="store_true",
            help="serve in this process (what `up` runs in the background)",
        )
    if command == "status":
        parser.add_argument("--json", action="store_true", help="the status as JSON")
    if command == "down":
        parser.add_argument(
            "--force",
            action="store_true",
            help="a daemon that does not answer: stop its process (its servers die with it)",
        )
    return parser


def _settings(args: argparse.Namespace) -> Any:
    from runner.servers.daemon import Settings
    from runner.servers.pool import Recycling

    for name in ("spare", "max_servers", "idle_expiry", "recycle_after", "recycle_rss"):
        value = getattr(args, name)
        if value < (0 if name == "spare" else 1):
            flag = "--" + name.replace("_", "-")
            raise SystemExit(f"runner: {flag}: expected a positive number, got {value:g}")
    return Settings(
        spare=args.spare,
        max_servers=args.max_servers,
        idle_expiry=args.idle_expiry,
        recycling=Recycling(after=args.recycle_after, rss_mib=args.recycle_rss),
    )


def _up(args: argparse.Namespace) -> int:
    """Start the daemon in the background, unless one runs; wait for its ready line."""
    _settings(args)  # refuse bad flags here, not in the background
    try:
        specs = [load_phase(path, environ=os.environ) for path in args.phases]
    except PhaseFileError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return EXIT_USAGE
    running = _find()
    if isinstance(running, int):
        return running
    if running is not None:
        print(f"runner pool already up: pid {running.pid} at {running.url}")
        return _warm(running, specs)
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = folder / "pool.log"
    flags = [
        f"--{name}={getattr(args, name.replace('-', '_'))}"
        for name in ("spare", "max-servers", "idle-expiry", "recycle-after", "recycle-rss")
    ]
    with open(log_path, "a", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "up", "--foreground", *flags],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,  # a terminal's hangup or Ctrl-C does not reach it
            text=True,
        )
    assert proc.stdout is not None
    line = ""
    if select.select([proc.stdout], [], [], UP_TIMEOUT)[0]:
        line = proc.stdout.readline().strip()
    proc.stdout.close()
    if not line.startswith("ready "):
        if proc.poll() is None:
            proc.terminate()
        print(f"runner: the pool daemon did not start; see {log_path}", file=sys.stderr)
        return 1
    print(f"runner pool up: pid {proc.pid} at {line.split()[1]} (log {log_path})")
    print(f"  `{PROG} status` shows its servers; `{PROG} down` stops them and it")
    client = _find()
    return _warm(client, specs) if isinstance(client, PoolClient) else 1


def _warm(client: PoolClient, specs: list[Any]) -> int:
    """Lease and give back at once a server for each phase's server key: started now, they
    wait warm for the phases' runs."""
    leases = Leases(client, None)
    for spec in specs:
        if not leases.leasable(spec):
            print(f"  {spec.name}: attached or isolated, its run starts its own server")
            continue
        try:
            _, lease = leases.take(spec)
        except PoolRefusedError as exc:
            print(f"runner: {spec.name}: {exc}", file=sys.stderr)
            return 1
        leases.give_back(lease, phases=0, settled=True)
        print(f"  server {lease.number} (opencode {lease.version}) is warm for {spec.name}")
    return 0


def _foreground(args: argparse.Namespace) -> int:
    """Serve in this process: loguru to stderr (the log `up` opened), the ready line on
    stdout, then stdout closed."""
    from runner._logs import logger
    from runner.servers.daemon import Daemon

    settings = _settings(args)
    logger.remove()
    logger.add(sys.stderr, level="INFO", diagnose=False)
    for package in ("runner", "actors"):
        logger.enable(package)

    def ready(url: str) -> None:
        print(f"ready {url}", flush=True)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # `up` stops reading: nothing may block on it
        os.close(devnull)

    return Daemon(settings=settings).serve(ready)


def _status(args: argparse.Namespace) -> int:
    client = _find()
    if isinstance(client, int):
        return client
    if client is None:
        print("runner pool: not running")
        return 1
    try:
        status = client.status()
    except PoolRefusedError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(status_text(status, client.url))
    return 0


def status_text(status: dict[str, Any], url: str) -> str:
    """The status for people: the daemon's line, then one line a server."""
    rss = status.get("rss_mib")
    lines = [
        f"runner pool: pid {status['pid']} at {url} · {len(status['servers'])} server(s)"
        f" · {status['leases']} lease(s), {status['phases']} phase(s) served"
        + (f" · {rss:.0f} MiB" if rss else "")
    ]
    for server in status["servers"]:
        lent = (
            f"leased to pid {server['leased_to']}"
            if server["leased_to"]
            else (f"idle {server['idle_s']:.0f}s" if server["idle_s"] is not None else "starting")
        )
        memory = f"{server['rss_mib']:.0f} MiB" if server["rss_mib"] else "? MiB"
        lines.append(
            f"  server {server['number']}: opencode {server['version'] or '?'} pid"
            f" {server['pid'] or '-'} · {server['served']} phase(s) in {server['leases']}"
            f" lease(s) · {memory} · age {server['age_s']:.0f}s · {lent}"
        )
    return "\n".join(lines)


def _down(*, force: bool) -> int:
    client = _find()
    if isinstance(client, int):
        if force:
            return _force_down()
        print(f"runner: `{PROG} down --force` stops it anyway", file=sys.stderr)
        return client
    if client is None:
        print("runner pool: not running")
        return 0
    started = time.monotonic()
    try:
        servers = client.down(DOWN_TIMEOUT).get("stopping", 0)
    except PoolRefusedError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 1
    if not wait_gone(client.pid, timeout=DOWN_TIMEOUT):
        print(
            f"runner: the pool daemon (pid {client.pid}) did not stop in {DOWN_TIMEOUT:g}s",
            file=sys.stderr,
        )
        return 1
    print(
        f"runner pool (pid {client.pid}) stopped with its {servers} server(s)"
        f" in {time.monotonic() - started:.1f}s"
    )
    return 0


def _force_down() -> int:
    """Stop the daemon the state file names although it does not answer: only a process of
    ours running `python -m runner up --foreground` (its pid may be someone else's by now)."""
    try:
        client = PoolClient.named()
    except PoolRefusedError:
        return 1  # said already: stale (removed), or not to be trusted
    if client is None:
        return 0
    if not is_daemon(client.pid):
        print(f"runner: pid {client.pid} is not a runner pool daemon; removing {client.path}")
        client.path.unlink(missing_ok=True)
        return 0
    os.kill(client.pid, signal.SIGTERM)
    os.kill(client.pid, signal.SIGCONT)  # a stopped daemon takes its SIGTERM now
    if not wait_gone(client.pid, timeout=DOWN_TIMEOUT):
        os.kill(client.pid, signal.SIGKILL)  # its servers die with it (PR_SET_PDEATHSIG)
        wait_gone(client.pid, timeout=5.0)
    client.path.unlink(missing_ok=True)
    print(f"runner pool (pid {client.pid}) stopped by force")
    return 0


def is_daemon(pid: int, proc: str = "/proc") -> bool:
    """True when `pid` is a process of ours running the pool daemon."""
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().split(b"\0")
        owner = os.stat(f"{proc}/{pid}").st_uid
    except OSError:
        return False
    return owner == os.getuid() and b"runner" in argv and b"--foreground" in argv and b"up" in argv


def _find() -> PoolClient | int | None:
    """The daemon; None when none runs (a stale state file is removed, and said); an exit
    code once the reason it cannot be used is printed."""
    try:
        return PoolClient.find()
    except PoolGoneError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return None
    except PoolRefusedError as exc:
        print(f"runner: {exc}", file=sys.stderr)
        return 1
