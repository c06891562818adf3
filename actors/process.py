"""The opencode server as an OS process: spawning, its environment, its group, its log."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sysconfig
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from core.errors import ServerStartError
from core.opencode_versions import capabilities
from core.server_rules import tail_lines

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PINNED_BINARY = PROJECT_ROOT / "node_modules" / ".bin" / "opencode"
DB_2 = "opencode-2.db"  # opencode 2.x's database, in the data folder 1.x's `opencode.db` is in
BINARY_ENV = "RUNNER_OPENCODE"  # the default binary for phases that name none (the matrix)
REAP_GRACE = 0.05  # after its end, for another thread's waitpid to let go of the process
TERM_AGAIN = 0.1  # a SIGTERM unanswered this long was taken by opencode's npm install

# Nothing leaves the machine: no update checks, model catalogue fetches, LSP downloads or shares.
OFFLINE_ENV = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_SHARE": "1",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSpec:
    """How to start (or attach to) an opencode server."""

    directory: str
    log_path: str
    binary: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    config_content: str | None = None
    start_timeout: float = 30.0
    stop_grace: float = 5.0
    attach_url: str | None = None
    attach_password: str | None = field(default=None, repr=False)
    data_dir: str | None = None  # `server.isolate`: opencode's data and state live here
    # A leased server (the pool daemon's): attached to, its process watched (`log_path` is its
    # log, read when it dies), and named by `origin` in the banner and the transcript.
    attach_pid: int | None = None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class Prespawned:
    """An opencode server started before its `ServerActor` (by the CLI, while Python still
    imports): the process, its password and its open log. The actor adopts it."""

    proc: subprocess.Popen[str]
    password: str = field(repr=False)
    log: TextIO
    data_dir: str | None = None

    @classmethod
    def start(cls, spec: ServerSpec) -> Prespawned:
        """Open the log and spawn; `ServerStartError` or `OSError` if either fails."""
        log = open_log(spec.log_path)
        password = new_password()
        try:
            proc = spawn(resolve_binary(spec.binary), spec, password, log)
        except BaseException:
            log.close()
            raise
        return cls(proc, password, log, spec.data_dir)

    def discard(self, grace: float = 0.5) -> None:
        """Stop it if no actor adopted it (a process its adopter reaped is never signalled: its
        group id may be someone else's by now); close its files. Idempotent."""
        if self.proc.poll() is None:
            terminate_group(self.proc, grace)
        for stream in (self.proc.stdout, self.log):
            if stream is not None:
                stream.close()
        remove_data_dir(self.data_dir)


def rss_mib(pid: int) -> float | None:
    """A process's resident memory in MiB (`VmRSS`), or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def wait_gone(
    pid: int,
    quit_event: threading.Event | None = None,
    slice_s: float = 0.5,
    timeout: float | None = None,
) -> bool:
    """Wait until process `pid` ends; True when it did, False when `quit_event` was set first
    or `timeout` passed. A pidfd wakes the wait the moment it ends (Linux 5.3 and later;
    `select.poll`, as `select.select` refuses fds past 1023); without one, the process is
    looked for every `slice_s`."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except (OSError, AttributeError):
        descriptor = None
    deadline = None if timeout is None else time.monotonic() + timeout
    poller = select.poll()
    if descriptor is not None:
        poller.register(descriptor, select.POLLIN)
    try:
        while quit_event is None or not quit_event.is_set():
            left = slice_s if deadline is None else min(slice_s, deadline - time.monotonic())
            if left <= 0:
                return False
            if descriptor is not None:
                if poller.poll(left * 1000):
                    return True
            elif not alive(pid):
                return True
            elif quit_event is not None:
                quit_event.wait(left)
            else:
                time.sleep(left)
        return False
    finally:
        if descriptor is not None:
            os.close(descriptor)


def alive(pid: int) -> bool:
    """True while process `pid` runs: it exists and is not a zombie (ended, not yet reaped by
    its parent: a killed run its shell has not waited for, a daemon init has not reaped)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            state = stat.read().rpartition(")")[2].split()[:1]
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in (["Z"], ["X"])


def remove_data_dir(path: str | None) -> None:
    """Remove an isolated server's data folder (after the server stopped); never raises."""
    if path is not None:
        import shutil  # (not before the spawn: it only serves `server.isolate`)

        shutil.rmtree(path, ignore_errors=True)


def new_password() -> str:
    """A server's random password, as `secrets.token_urlsafe(24)` makes it (from os.urandom)
    without importing `secrets`, whose OpenSSL-backed hashlib costs the spawn 3 ms."""
    return base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")


def open_log(path: str) -> TextIO:
    """The server's log file, its folder made (its owner, the server actor, closes it)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return open(path, "w", encoding="utf-8")


def resolve_binary(configured: str | None) -> str:
    """The opencode binary: as configured (`server.opencode`), else `$RUNNER_OPENCODE`, else
    the project's pinned one, else `PATH`'s."""
    if configured:
        return configured
    if os.environ.get(BINARY_ENV):
        return os.environ[BINARY_ENV]
    if PINNED_BINARY.exists():
        return str(PINNED_BINARY)
    return "opencode"


def free_port() -> int:
    """A loopback port the kernel just gave out. Not `serve --port 0`: every opencode from 1.14.48
    to 1.18.33 then binds 4096 when it can, where an `opencode run` of 1.14 to 1.17 shares the
    port (its socket reuses it) and answers half of our requests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def binary_version(binary: str) -> str | None:
    """The version of an opencode binary, without starting it where its npm package says it
    (`package.json` beside its `bin/`), else from `--version`; None when neither tells."""
    found = shutil.which(binary) or binary
    try:
        real = os.path.realpath(found)
        stamp = os.stat(real).st_mtime_ns
    except OSError:
        return None
    return _version_of(real, stamp)


@functools.lru_cache(maxsize=16)
def _version_of(real: str, _stamp: int) -> str | None:
    for folder in Path(real).parents[:3]:
        package = folder / "package.json"
        if package.is_file():
            try:
                version = json.loads(package.read_text(encoding="utf-8")).get("version")
            except (OSError, ValueError):
                break
            if isinstance(version, str):
                return version
    try:
        done = subprocess.run(
            [real, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def data_env(binary: str, spec: ServerSpec) -> dict[str, str]:
    """Where an opencode 2.x keeps its database: never in 1.x's `opencode.db`, which 2.x would
    migrate in place (PROTOCOL-2.md §1.5), but `opencode-2.db` beside it in the same data folder
    (logins and the rest stay shared). A 2.x phase whose `server.env` names 1.x's database is
    refused with one line."""
    version = binary_version(binary)
    if version is None or capabilities(version).protocol != 2:
        return {}
    named = spec.env.get("OPENCODE_DB")
    if named is None:
        return {"OPENCODE_DB": DB_2}
    if os.path.basename(named) == "opencode.db":
        raise ServerStartError(
            f"server.env: OPENCODE_DB={named} is opencode 1.x's database, which opencode "
            f"{version} would migrate in place: name another file (the runner's default for "
            f"2.x is {DB_2})"
        )
    return {}


def server_env(spec: ServerSpec, password: str, binary: str | None = None) -> dict[str, str]:
    """The child's environment: ours, the spec's, offline flags, the password, `rg` on PATH,
    and for opencode 2.x a database of its own (`data_env`)."""
    env = {**os.environ, **OFFLINE_ENV, **spec.env}
    if binary is not None:
        env.update(data_env(binary, spec))
    env["OPENCODE_SERVER_PASSWORD"] = password
    env["OPENCODE_PASSWORD"] = password  # opencode 2.x reads this one first
    env.pop("OPENCODE_SERVER_USERNAME", None)
    if spec.config_content is not None:
        env["OPENCODE_CONFIG_CONTENT"] = spec.config_content
    if spec.data_dir is not None:  # a fresh database: nothing a newer opencode wrote
        env["XDG_DATA_HOME"] = spec.data_dir
        env["XDG_STATE_HOME"] = os.path.join(spec.data_dir, "state")
        os.makedirs(env["XDG_STATE_HOME"], exist_ok=True)
    # opencode's grep/glob tools need `rg`; the venv's ripgrep wheel puts it beside python.
    scripts = sysconfig.get_path("scripts")
    env["PATH"] = os.pathsep.join(p for p in (scripts, env.get("PATH", "")) if p)
    return env


def spawn(binary: str, spec: ServerSpec, password: str, log_file) -> subprocess.Popen[str]:
    """Start `opencode serve` on a free loopback port in its own process group."""
    port = str(free_port())
    argv = [binary, "serve", "--hostname", "127.0.0.1", "--port", port, "--print-logs"]
    try:
        return subprocess.Popen(
            argv,
            cwd=spec.directory,
            env=server_env(spec, password, binary),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            bufsize=1,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (it only makes one system call)
        )
    except FileNotFoundError as exc:
        raise ServerStartError(
            f"opencode binary not found: {binary} (run `make setup` or set server.opencode)"
        ) from exc
    except PermissionError as exc:
        raise ServerStartError(f"opencode binary is not executable: {binary}") from exc
    except NotADirectoryError as exc:
        raise ServerStartError(f"directory does not exist: {spec.directory}") from exc


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up once before any fork (Linux only)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: if the runner itself is killed (SIGKILL leaves it no time to
    clean up), the kernel kills the server too instead of leaving it to run on its own."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def start_thread(name: str, target: Callable[[], None]) -> threading.Thread:
    """A daemon thread: it must never keep the interpreter alive."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send `sig` to a process group; False when no member of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def terminate_group(proc: subprocess.Popen[Any], grace: float) -> int | None:
    """SIGTERM the group until the leader ends, for up to `grace` s, then SIGKILL whatever is
    left of the group.

    opencode exits about 70 ms after a SIGTERM, except while it installs its configuration
    folder's packages (`@opencode-ai/plugin`, with npm's arborist, inside its own process,
    whenever that folder lacks them): arborist takes the first SIGTERM to roll the install back,
    and opencode then runs on. It lets the next one through, so SIGTERM is sent again every
    `TERM_AGAIN` s. The SIGKILL at the end of the grace is the last resort, and logged."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    deadline = time.monotonic() + grace
    sent = 0
    while signal_group(pgid, signal.SIGTERM):
        sent += 1
        remaining = deadline - time.monotonic()
        if wait_exit(proc, min(TERM_AGAIN, max(remaining, 0))) is not None:
            break
        from actors.logs import logger  # loguru: not before the spawn (the CLI's start-up)

        if remaining <= TERM_AGAIN:
            logger.warning("opencode pid {} ignored SIGTERM for {:.1f}s: killing it", pgid, grace)
            break
        logger.debug("opencode pid {} still runs after SIGTERM {}: sending another", pgid, sent)
    # Children (bash tool commands, language servers) can outlive the leader: sweep the group.
    signal_group(pgid, signal.SIGKILL)
    return wait_exit(proc, grace)


def wait_exit(proc: subprocess.Popen[Any], timeout: float) -> int | None:
    """Wait up to `timeout` s for `proc` to end; its exit code, None if it still runs.

    Woken by the kernel the moment it ends (`wait_gone`'s pidfd): `Popen.wait` with a timeout
    polls with sleeps that grow to 50 ms, which cost every server stop about 40 ms. Another
    thread may be reaping the process meanwhile.
    """
    deadline = time.monotonic() + timeout
    if proc.returncode is None:  # not reaped yet, so its pid is still its own
        wait_gone(proc.pid, slice_s=0.05, timeout=max(timeout, 0))
    with contextlib.suppress(subprocess.TimeoutExpired):  # reap it (or see it reaped)
        proc.wait(timeout=max(deadline - time.monotonic(), REAP_GRACE))
    return proc.returncode


def kill_marked(password: str) -> int:
    """SIGKILL every process whose environment carries this server's password; the count.

    opencode starts its bash tool's commands detached (a session of their own), so killing
    its process group misses them, and once it dies they belong to init. The random password
    it passes on in their environment marks them all, wherever they ended up.
    """
    marker = b"\0OPENCODE_SERVER_PASSWORD=" + password.encode() + b"\0"
    killed = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                environ = b"\0" + handle.read()
            if marker in environ:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
        except OSError:
            continue  # gone already, or not ours to read
    return killed


def read_log_tail(path: str, count: int = 20, max_bytes: int = 32_768) -> tuple[str, ...]:
    """The last lines of the server log (bounded read; empty if there is no log)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ()
    return tail_lines(text, count)
