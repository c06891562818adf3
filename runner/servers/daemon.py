"""The pool daemon (`python -m runner up`): warm opencode servers lent to separate runs.

A run on a warm server skips opencode's boot and its first-request warm-up (issue 25: about
0.7 s for the example against 3.2 s cold). The daemon listens on a free loopback port, behind
a random token, and says where in its state file (mode 0600, `runner.servers.lease`). It keeps
`Registry` entries: one opencode server each, with a mock LLM of its own (phases on the
embedded mock: a lease hands the server's mock the run's script, as a fresh one). A server is
lent to one run at a time, whole (`--parallel` phases of that run share it), and it comes back
when the run releases it or its process ends.

- **Keys.** A lease asks for a binary and a configuration; servers are started in the daemon's
  environment, so a run whose environment differs in what opencode reads is refused (`lease`).
- **A warm spare** per key (`spare`, 0 turns it off) is started as soon as a lease takes the
  last idle one.
- **Recycling.** A returned server that has served `recycle_after` phases, or holds
  `recycle_rss_mib`, is stopped (a run's own pool also recycles within a long run, leasing a
  fresh server and returning the old one).
- **Expiry and cap.** An idle server stops after `idle_expiry` seconds; at `max_servers`, the
  least recently used idle server makes way for a new key's; a leased one never does, so a pool
  whose servers are all lent refuses (the run starts a server of its own).
- **Faults.** A server that dies is dropped (its run sees it die: it watches the process); a
  run that ends without releasing (killed) has its server stopped, since its sessions may still
  be working. The daemon's own death takes its servers with it (they die with their parent).

`Registry` decides under one lock and starts and stops servers off it; `when_to_stop` is the
expiry and eviction decision, pure.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pykka

from actors.process import ServerSpec, alive, rss_mib
from actors.worker import stop_actors
from mock import MockLLM
from runner._logs import logger
from runner.servers.lease import (
    STATE_NAME,
    differences,
    environment_digest,
    state_dir,
)
from runner.servers.pool import Recycling, start_ahead
from runner.servers.shared import STOP_TIMEOUT, SharedServer, StartCancelledError, StartFailedError

SWEEP_EVERY = 1.0  # dead lessees, dead servers, idle expiry
IDLE_SCRIPT = [{"text": "This server's mock LLM has no run's script yet."}]
Key = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class Settings:
    """How the daemon keeps its servers (`python -m runner up` flags)."""

    spare: int = 1
    max_servers: int = 4
    idle_expiry: float = 900.0
    recycling: Recycling = field(default_factory=lambda: Recycling(after=100, rss_mib=768))


@dataclass(slots=True)
class _Entry:
    """One server of the daemon and what it knows of it."""

    number: int
    key: Key
    server: SharedServer
    mock: MockLLM
    started: float  # wall clock, for `status`
    last_used: float  # monotonic: a lease's end, or the start
    served: int = 0
    lease: str | None = None
    lessee: int | None = None
    leases: int = 0

    @property
    def idle(self) -> bool:
        return self.lease is None


@dataclass(frozen=True, slots=True)
class Idle:
    """What the expiry decision needs of an idle server."""

    number: int
    last_used: float


def when_to_stop(
    idle: Iterable[Idle], now: float, expiry: float, free_needed: int = 0
) -> list[int]:
    """The idle servers to stop: those idle `expiry` seconds, then the least recently used
    until `free_needed` more have gone (to make way under the cap). Pure."""
    ordered = sorted(idle, key=lambda entry: entry.last_used)
    expired = [entry.number for entry in ordered if now - entry.last_used >= expiry]
    rest = [entry.number for entry in ordered if entry.number not in expired]
    return expired + rest[: max(0, free_needed - len(expired))]


class LeaseRefusedError(Exception):
    """A lease the daemon will not grant; the message is the run's one line."""


class Registry:
    """The daemon's servers, under one lock."""

    def __init__(
        self,
        settings: Settings,
        folder: Path,
        environ: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._folder = folder
        self._environ = dict(os.environ if environ is None else environ)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}
        self._numbers = 0
        self._stopping: list[threading.Thread] = []
        self._closed = False
        self.leases = 0
        self.phases = 0

    def lease(self, ask: dict[str, Any]) -> dict[str, Any]:
        """A server for the asking run (`runner.servers.lease.PoolClient.lease`)."""
        binary, config = ask.get("binary"), ask.get("config_content")
        if not isinstance(binary, str) or not (config is None or isinstance(config, str)):
            raise LeaseRefusedError("a lease names a binary (and a configuration)")
        differ = differences(
            ask.get("environment") or {}, environment_digest(self._environ, config)
        )
        if differ:
            raise LeaseRefusedError(
                f"its servers run in another environment ({', '.join(differ)} differ): run"
                " python -m runner down and up again from this one"
            )
        key: Key = (binary, config)
        lessee = int(ask.get("lessee") or 0)
        start_timeout = float(ask.get("start_timeout") or 30.0)
        wait = bool(ask.get("wait", True))  # False: a run asks under its lock, warm or nothing
        with self._lock:
            if self._closed:
                raise LeaseRefusedError("it is stopping")
            entry = self._idle_for(key, ready_only=not wait)
            if entry is not None or wait:
                entry = entry or self._make(key, start_timeout)
                entry.lease, entry.lessee = secrets.token_hex(8), lessee
                entry.leases += 1
                self.leases += 1
                warm = entry.server.version is not None  # up before this lease asked
        if entry is None:
            self._spare_for(key, start_timeout)  # warm for the next one
            raise LeaseRefusedError("it has no warm server for it now")
        try:
            ready = entry.server.ready()
        except (StartFailedError, StartCancelledError) as exc:
            with self._lock:
                self._drop(entry)
            raise LeaseRefusedError(f"its server {entry.number} could not start: {exc}") from None
        try:
            entry.mock.reset(ask["script"] if ask.get("script") else IDLE_SCRIPT)
        except (OSError, ValueError) as exc:  # the script's fault: the server stays, idle
            with self._lock:
                entry.lease = entry.lessee = None
            raise LeaseRefusedError(f"its mock LLM cannot serve the script: {exc}") from None
        self._spare_for(key, start_timeout)
        logger.info(
            "server {} (pid {}) lent to pid {} as lease {}",
            entry.number,
            ready.pid,
            lessee,
            entry.lease,
        )
        return {
            "id": entry.lease,
            "url": ready.url,
            "password": ready.password,
            "pid": ready.pid,
            "log_path": entry.server.spec.log_path,
            "version": ready.version,
            "number": entry.number,
            "served": entry.served,
            "warm": warm,
        }

    def release(
        self, lease: str, phases: int, settled: bool, recycle: bool = False
    ) -> dict[str, Any]:
        """A run gave its server back; a server due for recycling (by the daemon's limits, or
        the run's: `recycle`) stops, one whose phases did not all end done with an abort sweep
        first."""
        with self._lock:
            entry = next((e for e in self._entries.values() if e.lease == lease), None)
            if entry is None:
                return {"released": False}  # stopped under it (its lessee looked gone, or down)
            entry.served += max(0, phases)
            self.phases += max(0, phases)
            entry.lease = entry.lessee = None
            entry.last_used = self._clock()
            why = self.settings.recycling.why(entry.served, self._rss(entry))
            if why is None and recycle:
                why = "the run that leased it recycled it"
            if why is None and not settled:
                why = "a phase on it did not end done: its sessions may still work"
            if why is not None:
                logger.info("server {} is recycled: {}", entry.number, why)
                self._drop(entry, sweep=not settled)
            key = entry.key
            start_timeout = entry.server.spec.start_timeout
        if why is not None:
            self._spare_for(key, start_timeout)
        return {"released": True, "recycled": why}

    def sweep(self) -> None:
        """Stop the servers of runs that ended without releasing, drop dead servers, stop the
        idle ones past their expiry."""
        with self._lock:
            for entry in list(self._entries.values()):
                if entry.server.failed and (entry.idle or entry.server.pid is not None):
                    logger.info("server {} died or never started; dropped", entry.number)
                    self._drop(entry)
                elif not entry.idle and entry.lessee and not alive(entry.lessee):
                    logger.info(
                        "server {}'s run (pid {}) ended without giving it back; stopped",
                        entry.number,
                        entry.lessee,
                    )
                    self._drop(entry, sweep=True)
            self._expire(0)

    def status(self) -> dict[str, Any]:
        """The servers, for `python -m runner status`."""
        now_wall, now = time.time(), self._clock()
        with self._lock:
            servers = [
                {
                    "number": e.number,
                    "pid": e.server.pid,
                    "binary": e.key[0],
                    "version": e.server.version,
                    "served": e.served,
                    "leases": e.leases,
                    "leased_to": e.lessee,
                    "rss_mib": self._rss(e),
                    "age_s": round(now_wall - e.started, 1),
                    "idle_s": None if not e.idle else round(now - e.last_used, 1),
                }
                for e in sorted(self._entries.values(), key=lambda e: e.number)
            ]
            return {
                "pid": os.getpid(),
                "servers": servers,
                "leases": self.leases,
                "phases": self.phases,
                "rss_mib": rss_mib(os.getpid()),
                "settings": {
                    "spare": self.settings.spare,
                    "max_servers": self.settings.max_servers,
                    "idle_expiry": self.settings.idle_expiry,
                    "recycle_after": self.settings.recycling.after,
                    "recycle_rss_mib": self.settings.recycling.rss_mib,
                },
            }

    def close(self) -> int:
        """Stop every server (and wait for them); how many there were."""
        with self._lock:
            self._closed = True
            entries = list(self._entries.values())
            for entry in entries:
                self._drop(entry)
            stopping, self._stopping = self._stopping, []
        for thread in stopping:
            thread.join(STOP_TIMEOUT)
        return len(entries)

    # -- under the lock ------------------------------------------------------------------------

    def _idle_for(self, key: Key, *, ready_only: bool = False) -> _Entry | None:
        """The key's most recently used idle server that did not fail (`ready_only`: that is
        up already)."""
        idle = [
            e
            for e in self._entries.values()
            if e.key == key
            and e.idle
            and not e.server.failed
            and (e.server.version is not None or not ready_only)
        ]
        return max(idle, key=lambda e: e.last_used, default=None)

    def _make(self, key: Key, start_timeout: float, *, spare: bool = False) -> _Entry:
        """A new server for `key`, not started (room made under the cap first)."""
        if len(self._entries) >= self.settings.max_servers:
            self._expire(len(self._entries) - self.settings.max_servers + 1)
        if len(self._entries) >= self.settings.max_servers:
            raise LeaseRefusedError(
                f"it is full: {len(self._entries)} server(s) (max_servers"
                f" {self.settings.max_servers}), none idle"
            )
        self._numbers += 1
        number = self._numbers
        mock = MockLLM(IDLE_SCRIPT).start()
        spec = ServerSpec(
            directory=str(self._folder),
            log_path=str(self._folder / "servers" / f"{number}.log"),
            binary=key[0],
            env={"MOCK_LLM_URL": mock.url},
            config_content=key[1],
            start_timeout=start_timeout,
        )
        now = self._clock()
        entry = _Entry(number, key, SharedServer(spec), mock, time.time(), now)
        self._entries[number] = entry
        logger.info("server {} starts{} for {}", number, " as a spare" if spare else "", key[0])
        return entry

    def _spare_for(self, key: Key, start_timeout: float) -> None:
        with self._lock:
            idle = [
                e for e in self._entries.values() if e.key == key and e.idle and not e.server.failed
            ]
            wanted = self.settings.spare - len(idle)
            room = self.settings.max_servers - len(self._entries)
            if self._closed or wanted <= 0 or room <= 0:
                return
            spares = [self._make(key, start_timeout, spare=True) for _ in range(min(wanted, room))]
        for entry in spares:
            start_ahead(entry.server)

    def _expire(self, free_needed: int) -> None:
        idle = [Idle(e.number, e.last_used) for e in self._entries.values() if e.idle]
        numbers = when_to_stop(idle, self._clock(), self.settings.idle_expiry, free_needed)
        for number in numbers:
            logger.info("server {} stops: idle, or making way", number)
            self._drop(self._entries[number])

    def _drop(self, entry: _Entry, *, sweep: bool | None = None) -> None:
        """Forget a server and stop it on a thread of its own (`close` joins it); `sweep`:
        abort its busy sessions first (default: when it is leased)."""
        if self._entries.pop(entry.number, None) is None:
            return
        busy = not entry.idle if sweep is None else sweep

        def stop() -> None:
            try:
                entry.server.stop(settled=not busy)
            except Exception:  # a thread's failure would go unseen otherwise
                logger.exception("stopping server {} failed", entry.number)
            finally:
                entry.mock.stop()

        thread = threading.Thread(target=stop, name=f"stop-server-{entry.number}", daemon=True)
        self._stopping = [t for t in self._stopping if t.is_alive()] + [thread]
        thread.start()

    @staticmethod
    def _rss(entry: _Entry) -> float | None:
        pid = entry.server.pid
        return None if pid is None else rss_mib(pid)


# -- the HTTP face ---------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Daemon
    timeout = 10  # a client that sends nothing does not hold a thread

    def do_GET(self) -> None:
        if self._authorised():
            if self.path == "/status":
                self._answer(200, self.server.registry.status())
            else:
                self._answer(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        if not self._authorised():
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._answer(400, {"error": "the body is not JSON"})
            return
        registry = self.server.registry
        try:
            if self.path == "/lease":
                self._answer(200, registry.lease(body))
            elif self.path == "/release":
                answer = registry.release(
                    str(body.get("lease")),
                    int(body.get("phases") or 0),
                    bool(body.get("settled")),
                    bool(body.get("recycle")),
                )
                self._answer(200, answer)
            elif self.path == "/down":
                self._answer(200, {"stopping": len(registry.status()["servers"])})
                threading.Thread(target=self.server.shutdown, daemon=True).start()
            else:
                self._answer(404, {"error": f"no route {self.path}"})
        except LeaseRefusedError as exc:
            self._answer(409, {"error": str(exc)})

    def _authorised(self) -> bool:
        given = self.headers.get("Authorization") or ""
        if hmac.compare_digest(given.encode(), f"Bearer {self.server.token}".encode()):
            return True
        self._answer(401, {"error": "wrong token"})
        return False

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("pool http: " + format, *args)


class _Daemon(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, registry: Registry, token: str) -> None:
        self.registry = registry
        self.token = token
        super().__init__(("127.0.0.1", 0), _Handler)


@dataclass
class Daemon:
    """The daemon in this process: `serve` until `down`, SIGTERM or SIGINT."""

    settings: Settings = field(default_factory=Settings)
    folder: Path = field(default_factory=state_dir)

    def serve(self, ready: Callable[[str], None] = lambda _url: None) -> int:
        """Listen, write the state file, serve; stop every server and remove the file at the
        end. `ready(url)` is called once the state file is written. 0, or 1 when another
        daemon's state file is in the way."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.folder.stat().st_uid != os.getuid():
            logger.error("the state folder {} is not ours", self.folder)
            return 1
        self.folder.chmod(0o700)
        registry = Registry(self.settings, self.folder)
        httpd = _Daemon(registry, secrets.token_urlsafe(32))
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        path = self.folder / STATE_NAME
        if not _claim(path, {"pid": os.getpid(), "url": url, "token": httpd.token}):
            logger.error("another pool daemon's state file is in the way: {}", path)
            httpd.server_close()
            return 1
        stop = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, lambda *_: threading.Thread(target=httpd.shutdown).start())
        sweeper = threading.Thread(target=_sweep, args=(registry, stop), daemon=True)
        sweeper.start()
        logger.info("pool daemon pid {} listens on {}", os.getpid(), url)
        ready(url)
        try:
            httpd.serve_forever(poll_interval=0.2)
        finally:
            stop.set()
            started = time.monotonic()
            count = registry.close()
            logger.info(
                "pool daemon stopped {} server(s) in {:.2f}s", count, time.monotonic() - started
            )
            left = pykka.ActorRegistry.get_all()
            if left:  # a stop that timed out must not keep the daemon alive
                logger.warning("stopping {} actor(s) left running", len(left))
                stop_actors(left, STOP_TIMEOUT)
            with contextlib.suppress(OSError):
                path.unlink()
            httpd.server_close()
            sweeper.join(SWEEP_EVERY * 2)
        return 0


def _sweep(registry: Registry, stop: threading.Event) -> None:
    while not stop.wait(SWEEP_EVERY):
        try:
            registry.sweep()
        except Exception:  # the sweeper must not die unseen
            logger.exception("the pool's sweep failed")


def _claim(path: Path, state: dict[str, Any]) -> bool:
    """Write the state file, readable by its owner only, unless one is there already."""
    temporary = path.with_name(f".{STATE_NAME}.{secrets.token_hex(8)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    descriptor = os.open(temporary, flags, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(state, file)
    try:
        os.link(temporary, path)  # fails when a state file is there: never overwritten
    except FileExistsError:
        return False
    finally:
        temporary.unlink()
    return True
