"""Warm servers from the pool daemon (`python -m runner up`): finding it, and leasing from it.

The daemon (`runner.servers.daemon`) writes where it listens, its process id and a random
token to a state file readable by its owner only (`state_file()`). A run finds it there
(`PoolClient.find`): a file that is not the user's own, or that others may read, is refused and
never used; a file whose daemon is gone is stale (removed, since it is the user's own and says
nothing true any more); a daemon that does not answer, or answers with another token, is
refused. Each refusal is one line the CLI prints before it starts a server of its own, as it
would without a daemon. No state file at all is no daemon: nothing is said.

A lease is one opencode server for this process alone, until it is released or this process
ends (the daemon watches the lessee's process id). Servers are interchangeable when they run
the same binary with the same configuration and the same environment (`environment_digest`):
the daemon's servers run in the daemon's environment, so a run whose environment differs in
what opencode reads is refused rather than given a server that would act otherwise.

Light on purpose: the CLI finds the daemon before its heavy imports (the standard library and
the process helpers `keys` uses too).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from actors.process import ServerSpec, alive, resolve_binary
from runner.servers.keys import server_key

__all__ = [
    "Lease",
    "PoolClient",
    "PoolGoneError",
    "PoolRefusedError",
    "environment_digest",
    "judge_folder",
    "judge_state",
    "state_dir",
    "state_file",
]

STATE_NAME = "pool.json"
FIND_TIMEOUT = 2.0  # the daemon's status answer: it answers from memory
LEASE_TIMEOUT = 90.0  # a lease may wait for a cold server's start (`timeouts.start`, 30 s)
# What opencode reads from its environment besides the names its configuration quotes: where it
# keeps data and configuration, its own switches, and the PATH its tools run with; then what
# providers and their SDKs read without being quoted (keys, credentials, proxies, Node's own).
ENVIRONMENT = (
    "HOME",
    "PATH",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_CACHE_HOME",
)
# Set by the runner for each server (password, configuration): never compared.
PER_SERVER = frozenset(
    {"OPENCODE_SERVER_PASSWORD", "OPENCODE_PASSWORD", "OPENCODE_CONFIG_CONTENT", "MOCK_LLM_URL"}
)
PREFIXES = ("OPENCODE_", "AWS_", "AZURE_", "GOOGLE_", "GCLOUD_", "VERTEX", "NODE_", "BUN_")
SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_API_BASE", "_BASE_URL")
PROXIES = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"})
_QUOTED = re.compile(r"\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


class PoolRefusedError(Exception):
    """The daemon cannot be used; the message says why, in one line."""


class PoolGoneError(PoolRefusedError):
    """The state file names a daemon that is gone (the file is removed)."""


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The runner's state folder: `$XDG_STATE_HOME/opencode-runner`, else
    `~/.local/state/opencode-runner`."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_STATE_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "opencode-runner"


def state_file(environ: Mapping[str, str] | None = None) -> Path:
    """Where the pool daemon says where it is."""
    return state_dir(environ) / STATE_NAME


def judge_state(mode: int, owner: int, uid: int, text: str) -> dict[str, Any]:
    """The state file's content if it may be trusted: the user's own (`owner` is `uid`) and
    readable by nobody else; `PoolRefusedError` naming what is wrong otherwise. Pure."""
    if owner != uid:
        raise PoolRefusedError(f"it belongs to uid {owner}, not to you (uid {uid}): refused")
    if mode & 0o077:
        raise PoolRefusedError(
            f"others may read or write it (mode {stat.S_IMODE(mode):04o}, not 0600): refused"
        )
    try:
        state = json.loads(text)
    except ValueError:
        raise PoolRefusedError("it is not JSON: refused") from None
    if not isinstance(state, dict) or not all(k in state for k in ("pid", "url", "token")):
        raise PoolRefusedError("it lacks pid, url or token: refused")
    if not isinstance(state["pid"], int) or urlsplit(str(state["url"])).hostname != "127.0.0.1":
        raise PoolRefusedError(f"it names no loopback daemon ({state['url']!r}): refused")
    return state


def judge_folder(mode: int, owner: int, uid: int) -> None:
    """`PoolRefusedError` unless the state file's folder is the user's and nobody else may
    write into it (else another user could swap the file). Pure."""
    if owner != uid:
        raise PoolRefusedError(
            f"its folder belongs to uid {owner}, not to you (uid {uid}): refused"
        )
    if mode & 0o022:
        raise PoolRefusedError(
            f"others may write into its folder (mode {stat.S_IMODE(mode):04o}): refused"
        )


def environment_digest(environ: Mapping[str, str], config_content: str | None) -> dict[str, str]:
    """Name -> digest of each variable the servers' behaviour depends on: `ENVIRONMENT`,
    opencode's own `OPENCODE_*`, and what the configuration quotes (`{env:NAME}`); a missing
    one digests as missing. Compared by the daemon against its own. Pure."""
    names = set(ENVIRONMENT) | {name for name in environ if _read_unquoted(name)}
    names |= set(_QUOTED.findall(config_content or ""))
    return {name: _digest(environ.get(name)) for name in sorted(names) if name not in PER_SERVER}


def _read_unquoted(name: str) -> bool:
    upper = name.upper()
    return upper.startswith(PREFIXES) or upper.endswith(SUFFIXES) or upper in PROXIES


def differences(ours: Mapping[str, str], theirs: Mapping[str, str]) -> list[str]:
    """The names whose digests differ between two `environment_digest`s. Pure."""
    missing = _digest(None)
    return sorted(
        name
        for name in set(ours) | set(theirs)
        if ours.get(name, missing) != theirs.get(name, missing)
    )


def _digest(value: str | None) -> str:
    if value is None:
        return "-"
    return hashlib.sha256(value.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Lease:
    """A server the daemon lent this process."""

    id: str
    url: str
    password: str
    pid: int
    log_path: str
    version: str
    number: int  # the daemon's how-many-th server
    served: int  # phases it served before this lease
    warm: bool  # it was up before the lease asked (else the lease waited for its start)
    daemon_pid: int

    @property
    def origin(self) -> str:
        """How the banner and the transcript name it."""
        how = "warm" if self.warm else "started"
        return (
            f"{how} from the runner pool (daemon pid {self.daemon_pid}): server {self.number},"
            f" {self.served} phase(s) served before"
        )


class PoolClient:
    """The daemon, as found in its state file."""

    def __init__(self, state: Mapping[str, Any], path: Path) -> None:
        self.pid: int = state["pid"]
        self.url: str = state["url"]
        self._token: str = state["token"]
        self.path = path

    @classmethod
    def find(cls, environ: Mapping[str, str] | None = None) -> PoolClient | None:
        """The running daemon; None when there is no state file; `PoolRefusedError` (why, one
        line) when there is one that cannot be used."""
        client = cls.named(environ)
        if client is not None:
            client.status(timeout=FIND_TIMEOUT)  # answers, and to our token
        return client

    @classmethod
    def named(cls, environ: Mapping[str, str] | None = None) -> PoolClient | None:
        """The daemon the state file names, alive, without asking it anything (`find` does);
        None without a state file; `PoolRefusedError` for one that may not be trusted,
        `PoolGoneError` (the file removed) for one whose daemon is gone."""
        path = state_file(environ)
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PoolRefusedError(f"the pool's state file {path}: {exc.strerror}") from None
        with open(descriptor, encoding="utf-8") as file:
            info = os.fstat(file.fileno())
            text = file.read()
        try:
            folder = os.stat(path.parent)
            judge_folder(folder.st_mode, folder.st_uid, os.getuid())
            state = judge_state(info.st_mode, info.st_uid, os.getuid(), text)
        except PoolRefusedError as exc:
            raise PoolRefusedError(f"the pool's state file {path}: {exc}") from None
        client = cls(state, path)
        if not alive(client.pid):
            with contextlib.suppress(OSError):
                now = os.stat(path, follow_symlinks=False)
                if (now.st_ino, now.st_dev) == (info.st_ino, info.st_dev):  # not a new one
                    path.unlink()
            raise PoolGoneError(
                f"the runner pool (pid {client.pid}) is gone; removed its stale state file {path}"
            )
        return client

    def status(self, timeout: float = FIND_TIMEOUT) -> dict[str, Any]:
        """The daemon's servers and settings."""
        return self._call("GET", "/status", None, timeout)

    def lease(
        self,
        *,
        binary: str,
        config_content: str | None,
        script: str | None,
        environ: Mapping[str, str],
        start_timeout: float,
        wait: bool = True,
    ) -> Lease:
        """A server of its own for this process (`wait`: for one to start, if none is warm);
        `PoolRefusedError` with the daemon's reason."""
        answer = self._call(
            "POST",
            "/lease",
            {
                "binary": binary,
                "config_content": config_content,
                "script": script,
                "environment": environment_digest(environ, config_content),
                "lessee": os.getpid(),
                "start_timeout": start_timeout,
                "wait": wait,
            },
            LEASE_TIMEOUT + start_timeout if wait else FIND_TIMEOUT,
        )
        return Lease(daemon_pid=self.pid, **answer)

    def release(self, lease: Lease, *, phases: int, settled: bool, recycle: bool = False) -> None:
        """Give a server back: it served `phases` (`settled`: all done, its sessions idle;
        `recycle`: the run retired it, the daemon stops it)."""
        body = {"lease": lease.id, "phases": phases, "settled": settled, "recycle": recycle}
        self._call("POST", "/release", body, 10.0)

    def down(self, timeout: float = 60.0) -> dict[str, Any]:
        """Stop the daemon and every server it started; what it stopped."""
        return self._call("POST", "/down", {}, timeout)

    def _call(self, method: str, path: str, body: Any, timeout: float) -> dict[str, Any]:
        where = urlsplit(self.url)
        connection = http.client.HTTPConnection(where.hostname, where.port, timeout=timeout)
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            raise PoolRefusedError(
                f"the runner pool (pid {self.pid}) at {self.url} does not answer: {exc}"
            ) from None
        finally:
            connection.close()
        try:
            answer = json.loads(text)
        except ValueError:
            answer = {"error": text.strip()[:200]}
        if response.status != 200:
            why = answer.get("error") if isinstance(answer, dict) else None
            raise PoolRefusedError(f"the runner pool refused: {why or response.status}")
        return answer


class Leases:
    """One run's servers from the daemon: leased per server key (the first ones before the
    heavy imports, `prelease`; successors as the run's pool recycles), given back as the run's
    pool stops them."""

    def __init__(self, client: PoolClient, script: str | None) -> None:
        self.client = client
        self._script = script
        self._lock = threading.Lock()
        self._out: dict[str, Lease] = {}  # taken, not given back yet

    @staticmethod
    def leasable(spec: Any) -> bool:
        """A phase on a server of the runner's own making, with its data where opencode keeps
        it (not attached, not isolated)."""
        return spec.server.attach is None and not spec.server.isolate

    def take(self, spec: Any, *, wait: bool = True) -> tuple[Any, Lease]:
        """A server for `spec` and how to attach to it (`wait`: for one to start, if none is
        warm; else refused at once); `PoolRefusedError` if refused."""
        binary = resolve_binary(spec.server.opencode)
        lease = self.client.lease(
            binary=os.path.abspath(binary) if os.sep in binary else binary,
            config_content=spec.config_content,
            script=self._script,
            environ=os.environ,
            start_timeout=spec.timeouts.start,
            wait=wait,
        )
        with self._lock:
            self._out[lease.id] = lease
        server = ServerSpec(
            directory=str(spec.directory),
            log_path=lease.log_path,
            binary=binary,
            start_timeout=spec.timeouts.start,
            attach_url=lease.url,
            attach_password=lease.password,
            attach_pid=lease.pid,
            origin=lease.origin,
        )
        return server, lease

    def give_back(self, lease: Lease, *, phases: int, settled: bool, recycle: bool = False) -> None:
        """Release a server (`recycle`: retired by the run, to be stopped); a daemon that is
        gone or refuses is only noted (it stops the servers of runs that end without releasing
        them)."""
        with self._lock:
            if self._out.pop(lease.id, None) is None:
                return  # given back already
        try:
            self.client.release(lease, phases=phases, settled=settled, recycle=recycle)
        except PoolRefusedError as exc:
            from runner._logs import logger

            logger.debug("server {} was not given back: {}", lease.number, exc)

    def close(self) -> None:
        """Give back every lease still out (a run that ended before its pool took them)."""
        with self._lock:
            out = list(self._out.values())
        for lease in out:
            self.give_back(lease, phases=0, settled=True)


def prelease(
    specs: list[Any], parallel: int, script: str | None, say: Any
) -> tuple[Leases | None, dict[tuple[Any, ...], tuple[Any, Lease]]]:
    """The daemon's leases for the servers the first `parallel` phases need, taken now (before
    the heavy imports, as `keys.prestart` starts servers). `say(line)` is told, in one line,
    why the daemon is not used when it is there but cannot be: refused, stale, or another
    user's. No daemon (no state file): `(None, {})`, and nothing said."""
    try:
        client = PoolClient.find()
    except PoolRefusedError as exc:
        say(f"{exc}; starting a server of its own")
        return None, {}
    if client is None:
        return None, {}
    leases = Leases(client, script)
    taken: dict[tuple[Any, ...], tuple[Any, Lease]] = {}
    for spec in specs[:parallel]:
        key = server_key(spec)
        if key in taken or not leases.leasable(spec):
            continue
        try:
            taken[key] = leases.take(spec)
        except PoolRefusedError as exc:  # its phases start a server of their own
            say(f"{exc}; starting a server of its own")
    return leases, taken
