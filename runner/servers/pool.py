"""ServerPool: a batch's opencode servers, leased one session at a time and recycled.

opencode's memory grows with the sessions a server has served (about 0.8 GiB after 2 of the
Ray benchmark's phases, 1.6 GiB after 20), so a batch of hundreds of phases on one server runs
a machine out of memory. The phases of a `run_phases` call that ask for the same server
(`server_key`) lease it from the pool, one phase at a time each; the pool counts the phases each
server has been leased to and reads its resident memory at every lease. A server that has
served `server.recycle_after` phases, or whose memory passed `server.recycle_rss_mib`, takes no
new lease: its running phases finish on it (it drains), then it stops, and the next lease
gets a fresh one. That one is started ahead (a warm spare), as soon as a lease finds its
predecessor at its limit (served) or near it (90% of its memory): the phase that meets the
recycling does not wait for a cold start. A server that died is replaced at the next lease:
the phases that ran on it end `failed` with its log, the later ones run on a new one. A server
that never came up is not: every phase on its key fails at once with its reason.

While the pool daemon runs (`runner.servers.daemon`), the servers come from it: the CLI's
first leases, then one lent as each new server starts (off this pool's lock), given back as
it stops (a retired one marked so, and the daemon stops it). `Recycling` is the decision,
pure; `ServerPool` holds the servers, under one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from actors.process import Prespawned, ServerSpec, rss_mib
from core.errors import RunnerError
from runner._logs import logger
from runner.phase import PhaseSpec
from runner.servers.keys import server_key, server_spec
from runner.servers.lease import Lease, Leases
from runner.servers.shared import (
    STOP_TIMEOUT,
    SharedServer,
    StartCancelledError,
    StartFailedError,
)

SPARE_AT = 0.9  # of `recycle_rss_mib`: a successor is started ahead from there


@dataclass(frozen=True, slots=True)
class Recycling:
    """When a server takes no new lease (None: never for that reason)."""

    after: int | None = None  # phases served
    rss_mib: float | None = None  # resident memory

    @classmethod
    def of(cls, spec: PhaseSpec) -> Recycling:
        """The phase's `server.recycle_after` and `server.recycle_rss_mib`."""
        return cls(after=spec.server.recycle_after, rss_mib=spec.server.recycle_rss_mib)

    def why(self, served: int, rss: float | None) -> str | None:
        """Why a server that served `served` phases and holds `rss` MiB is retired, or None."""
        if self.after is not None and served >= self.after:
            return f"it served {served} phase(s) (recycle_after {self.after})"
        if self.rss_mib is not None and rss is not None and rss >= self.rss_mib:
            return f"it holds {rss:.0f} MiB (recycle_rss_mib {self.rss_mib:g})"
        return None

    def near(self, served: int, rss: float | None) -> bool:
        """True when the next lease will (or may) retire the server: time to start its
        successor."""
        if self.after is not None and served >= self.after:
            return True
        return self.rss_mib is not None and rss is not None and rss >= SPARE_AT * self.rss_mib


@dataclass(slots=True)
class _Slot:
    """One server of the pool and what the pool knows of it."""

    server: SharedServer
    number: int  # the key's how-many-th server: 1, 2, ...
    served: int = 0  # phases leased
    running: int = 0  # phases on it now
    settled: bool = True  # every phase that ended on it ended with exit code 0
    retired: bool = False  # takes no new lease; stops when its last phase ends
    phases: list[str] = field(default_factory=list)


SpecFor = Callable[[PhaseSpec, Mapping[str, str]], ServerSpec]


class ServerPool:
    """The servers of one batch (or one Ray node), per `server_key`: the current one takes the
    leases. `spec_for` makes a new server's `ServerSpec` (a Ray node puts its log and data in
    its own folder). `leases`: the pool daemon's (`runner.servers.lease`), where servers come
    from while it lends them, `leased` the first ones, taken by the CLI before its imports."""

    def __init__(
        self,
        env: Mapping[str, str],
        prespawned: Mapping[Any, Prespawned] | None = None,
        spec_for: SpecFor = server_spec,
        leases: Leases | None = None,
        leased: Mapping[Any, tuple[ServerSpec, Lease]] | None = None,
    ) -> None:
        self._env = dict(env)
        self._spec_for = spec_for
        self._prespawned = dict(prespawned or {})  # the CLI's early servers, one per key at most
        self._leases = leases
        self._leased = dict(leased or {})  # the daemon's first servers, one per key at most
        self._lock = threading.Lock()
        self._current: dict[tuple[Any, ...], _Slot] = {}
        self._spares: dict[tuple[Any, ...], _Slot] = {}  # started ahead of their predecessor's end
        self._slots: dict[int, _Slot] = {}  # id(server) -> its slot, retired ones too
        self._started: dict[tuple[Any, ...], int] = {}
        self._stopping: list[threading.Thread] = []  # retired servers stopping, joined at close
        self._closed = False  # no lease after `close`: nothing would stop its server

    def lease(self, spec: PhaseSpec, env: Mapping[str, str] | None = None) -> SharedServer:
        """The server `spec` runs on: the key's current one, unless it must be recycled (then a
        new one, started by the phase as it waits for it). `env`: a new server's environment,
        if not the pool's."""
        with self._lock:
            self._check_open()
            slot = self._slot(spec, env)
            slot.served += 1
            slot.running += 1
            slot.phases.append(spec.name)
            key = server_key(spec)
            near = Recycling.of(spec).near(slot.served, self._rss(slot))
            if spec.server.spare and near and key not in self._spares:
                spare = self._spares[key] = self._make(key, spec, env)
                logger.debug("a successor of server {} starts ahead", slot.number)
                start_ahead(spare.server)
            return slot.server

    def warm(self, spec: PhaseSpec, env: Mapping[str, str] | None = None) -> SharedServer:
        """The server `spec` would lease, without leasing it (to start it ahead of its phase)."""
        with self._lock:
            self._check_open()
            return self._slot(spec, env).server

    def release(self, server: SharedServer, *, exit_code: int) -> None:
        """A phase on `server` ended; a retired server stops with its last phase."""
        with self._lock:
            slot = self._slots.get(id(server))
            if slot is None:  # the pool was closed under it (a Ray node shutting down)
                return
            slot.running -= 1
            slot.settled = slot.settled and exit_code == 0
            if slot.retired and slot.running == 0:
                self._stop(slot)

    def close(self, *, quick: bool, settled: bool) -> int:
        """Stop every server (`quick`: the batch was interrupted); how many it stopped, the
        recycled ones included."""
        with self._lock:
            self._closed = True
            slots, self._slots, self._current = list(self._slots.values()), {}, {}
            self._spares = {}
            unused = [early for key, early in self._prespawned.items() if key not in self._started]
            unlent = [lease for key, (_, lease) in self._leased.items() if key not in self._started]
            stopping, self._stopping = self._stopping, []
        for slot in slots:
            slot.server.stop(quick=quick, settled=settled and slot.settled)
            self._give_back(slot.server, slot.served, slot.settled)
        if self._leases is not None:
            for lease in unlent:  # taken for phases that never came
                self._leases.give_back(lease, phases=0, settled=True)
        for early in unused:  # started early for phases that never came
            early.discard()
        for thread in stopping:
            thread.join(STOP_TIMEOUT)
        with self._lock:
            return sum(self._started.values())

    def servers(self) -> list[dict[str, Any]]:
        """What the pool holds now, for a status line or a test."""
        with self._lock:
            return [
                {"number": s.number, "served": s.served, "running": s.running, "retired": s.retired}
                for s in self._slots.values()
            ]

    def _slot(self, spec: PhaseSpec, env: Mapping[str, str] | None) -> _Slot:
        """The key's current server, recycled or replaced first when it must be (locked)."""
        key = server_key(spec)
        slot = self._current.get(key)
        if slot is not None and (why := self._retire_why(slot, Recycling.of(spec))):
            logger.debug("server {} of {} is recycled: {}", slot.number, spec.name, why)
            self._retire(key, slot)
            slot = None
        if slot is None:
            slot = self._spares.pop(key, None)
            if slot is not None and slot.server.failed:  # the spare did not start: retire it
                slot.retired = True
                self._stop(slot)
                slot = None
            slot = slot if slot is not None else self._make(key, spec, env)
            self._current[key] = slot
        return slot

    def _check_open(self) -> None:
        if self._closed:
            raise RunnerError("the batch's servers are stopped")

    def _retire_why(self, slot: _Slot, recycling: Recycling) -> str | None:
        if slot.server.failed and slot.server.pid is not None:
            # It died after it came up. One that never came up stays: its phases fail at once
            # with its reason rather than each trying a start that fails the same way.
            return "it died"
        return recycling.why(slot.served, self._rss(slot))

    @staticmethod
    def _rss(slot: _Slot) -> float | None:
        pid = slot.server.pid
        return rss_mib(pid) if pid is not None else None

    def _retire(self, key: tuple[Any, ...], slot: _Slot) -> None:
        slot.retired = True
        del self._current[key]
        if slot.running == 0:  # nobody left on it: it stops now
            self._stop(slot)

    def _stop(self, slot: _Slot) -> None:
        """Stop a retired server on a thread of its own (a phase never waits for it); `close`
        waits for it. Called under the lock."""
        del self._slots[id(slot.server)]
        server, settled = slot.server, slot.settled

        def stop() -> None:
            try:
                server.stop(settled=settled)
                self._give_back(server, slot.served, settled, recycle=True)
            except Exception:  # a thread's failure would go unseen otherwise
                logger.exception("stopping a recycled server failed")

        thread = threading.Thread(target=stop, name=f"stop-server-{slot.number}", daemon=True)
        self._stopping.append(thread)
        thread.start()

    def _make(self, key: tuple[Any, ...], spec: PhaseSpec, env: Mapping[str, str] | None) -> _Slot:
        """A new server for `key`, not started yet: the CLI's lease from the pool daemon for
        the first, else one the daemon lends when the server starts (off this lock: the
        daemon may have to start it), else one of ours (the CLI's early one for the first)."""
        number = self._started[key] = self._started.get(key, 0) + 1
        if number == 1 and key in self._leased:
            lent, lease = self._leased[key]
            slot = _Slot(SharedServer(lent, lease=lease), number)
        else:
            early = self._prespawned.get(key) if number == 1 else None
            server_env = self._env if env is None else env
            own = self._spec_for(spec, server_env)
            leases = self._leases
            if leases is None or early or env is not None or not leases.leasable(spec):
                slot = _Slot(SharedServer(own, early), number)
            else:  # its own environment (`env`) is not the daemon's: never lent
                slot = _Slot(SharedServer(own, lend=lambda: leases.take(spec)), number)
        self._slots[id(slot.server)] = slot
        return slot

    def _give_back(
        self, server: SharedServer, served: int, settled: bool, *, recycle: bool = False
    ) -> None:
        if server.lease is not None and self._leases is not None:
            self._leases.give_back(server.lease, phases=served, settled=settled, recycle=recycle)


def start_ahead(server: SharedServer) -> None:
    """Start a server before a phase asks for it; a failure is its phases' to report (the
    server remembers it)."""

    def boot() -> None:
        try:
            server.ready()
        except (StartFailedError, StartCancelledError) as exc:
            logger.debug("a server started ahead of its phases did not start: {}", exc)
        except Exception:  # a thread's failure would go unseen otherwise
            logger.exception("starting a server ahead of its phases failed")

    threading.Thread(target=boot, name="start-ahead", daemon=True).start()
