"""The batch's server pool: leases, recycling and replacement, with stand-in servers (no
opencode: `SharedServer` is replaced by a recorder)."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import ClassVar

import pytest

from core.errors import RunnerError
from runner.phase import load_phase
from runner.servers import pool as pool_module
from runner.servers.pool import Recycling, ServerPool

pytestmark = pytest.mark.timeout(10)


class FakeServer:
    """What the pool asks of a `SharedServer`."""

    made: ClassVar[list[FakeServer]] = []

    def __init__(self, spec, prespawned=None, *, lease=None, lend=None) -> None:
        self.spec, self.prespawned = spec, prespawned
        self.lease, self.lend = lease, lend
        self.failed = False
        self.pid = None
        self.stops: list[dict] = []
        self.stopped = threading.Event()
        self.started = threading.Event()  # asked to start ahead of its phases
        FakeServer.made.append(self)

    def ready(self) -> None:
        if self.lend is not None:  # as SharedServer: the daemon lends when the server starts
            self.spec, self.lease = self.lend()
            self.lend = None
        self.started.set()

    def stop(self, **how) -> None:
        self.stops.append(how)
        self.stopped.set()


@pytest.fixture
def pool(monkeypatch):
    FakeServer.made = []
    monkeypatch.setattr(pool_module, "SharedServer", FakeServer)
    return ServerPool({}, {})


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(f"name: p\nprompt: Go.\ndirectory: {tmp_path}\n")
    return load_phase(path)


def recycled(spec, **server):
    return replace(spec, server=replace(spec.server, **server))


def test_recycling_says_why_a_server_takes_no_new_phase():
    rules = Recycling(after=3, rss_mib=1024)
    assert rules.why(2, 1023.0) is None
    assert rules.why(3, 10.0) == "it served 3 phase(s) (recycle_after 3)"
    assert rules.why(1, 1024.0) == "it holds 1024 MiB (recycle_rss_mib 1024)"
    assert Recycling().why(10_000, 1e9) is None  # both off
    assert rules.why(1, None) is None  # memory unknown (attached, or gone)


def test_phases_share_a_server_until_it_served_its_share(pool, spec):
    two = recycled(spec, recycle_after=2)
    first = pool.lease(two)
    assert len(FakeServer.made) == 1
    second = pool.lease(two)
    assert first is second
    assert len(FakeServer.made) == 2  # at its limit: its successor starts ahead
    spare = FakeServer.made[1]
    assert spare.started.wait(5)
    third = pool.lease(two)  # the first served 2 phases: the one started ahead
    assert third is spare
    assert first.stops == []  # two phases still run on it: it drains
    pool.release(first, exit_code=0)
    assert first.stops == []
    pool.release(second, exit_code=0)
    assert first.stopped.wait(5)  # its last phase ended: it stops, settled
    assert first.stops == [{"settled": True}]
    pool.release(third, exit_code=1)
    pool.close(quick=False, settled=False)
    assert third.stops == [{"quick": False, "settled": False}]


def test_without_a_spare_the_successor_starts_when_a_phase_needs_it(pool, spec):
    two = recycled(spec, recycle_after=2, spare=0)
    first = pool.lease(two)
    assert pool.lease(two) is first
    assert len(FakeServer.made) == 1  # at its limit, but nothing is started ahead
    third = pool.lease(two)
    assert third is not first
    assert len(FakeServer.made) == 2
    assert not third.started.is_set()  # its phase starts it
    for server in (first, first, third):
        pool.release(server, exit_code=0)
    pool.close(quick=False, settled=True)


def test_a_server_that_never_came_up_is_kept_so_its_phases_fail_at_once(pool, spec):
    first = pool.lease(spec)
    pool.release(first, exit_code=1)
    first.failed = True  # its start failed (no pid): another start would fail the same way
    assert pool.lease(spec) is first
    assert len(FakeServer.made) == 1


def test_no_lease_after_close_and_a_late_release_is_quiet(pool, spec):
    server = pool.lease(spec)
    pool.close(quick=True, settled=False)
    pool.release(server, exit_code=1)  # a Ray node's phase ending after its node closed
    with pytest.raises(RunnerError, match="stopped"):
        pool.lease(spec)


def test_a_dead_server_is_replaced_at_the_next_lease(pool, spec):
    first = pool.lease(spec)
    pool.release(first, exit_code=1)
    first.failed, first.pid = True, 4242  # it came up, then died under its phase
    second = pool.lease(spec)
    assert second is not first
    assert first.stopped.wait(5)  # nobody ran on it any more
    assert first.stops == [{"settled": False}]
    pool.release(second, exit_code=0)
    pool.close(quick=False, settled=True)
    assert second.stops == [{"quick": False, "settled": True}]


def test_phases_of_other_servers_get_their_own(pool, spec):
    other = recycled(spec, opencode="/other/opencode")
    assert pool.lease(spec) is not pool.lease(other)
    assert len(FakeServer.made) == 2


class FakeLeases:
    """What the pool asks of `runner.servers.lease.Leases`."""

    def __init__(self) -> None:
        self.taken: list[str] = []
        self.given: list[tuple[str, int, bool, bool]] = []

    @staticmethod
    def leasable(spec) -> bool:
        return spec.server.attach is None

    def take(self, spec, *, wait=True):
        lease = f"lease-{len(self.taken) + 1}"
        self.taken.append(lease)
        return f"attach-spec-{lease}", lease

    def give_back(self, lease, *, phases, settled, recycle=False) -> None:
        self.given.append((lease, phases, settled, recycle))


def test_servers_come_from_the_daemon_when_they_start_and_go_back_as_they_retire(monkeypatch, spec):
    FakeServer.made = []
    monkeypatch.setattr(pool_module, "SharedServer", FakeServer)
    leases = FakeLeases()
    two = recycled(spec, recycle_after=2)
    from runner.servers.keys import server_key

    pool = ServerPool({}, {}, leases=leases, leased={server_key(two): ("first-spec", "lease-0")})
    first = pool.lease(two)
    assert (first.spec, first.lease) == ("first-spec", "lease-0")  # the CLI's, taken early
    assert pool.lease(two) is first  # at its limit: the successor starts ahead
    successor = FakeServer.made[1]
    assert successor.started.wait(5)
    assert (successor.spec, successor.lease) == ("attach-spec-lease-1", "lease-1")
    assert pool.lease(two) is successor
    pool.release(first, exit_code=0)
    pool.release(first, exit_code=0)  # its last phase: it stops, and goes back to be recycled
    assert first.stopped.wait(5)
    pool.release(successor, exit_code=0)
    pool.close(quick=False, settled=True)
    assert leases.given == [("lease-0", 2, True, True), ("lease-1", 1, True, False)]


def test_a_server_for_an_environment_of_its_own_is_never_lent(monkeypatch, spec):
    FakeServer.made = []
    monkeypatch.setattr(pool_module, "SharedServer", FakeServer)
    leases = FakeLeases()
    pool = ServerPool({}, {}, leases=leases)
    server = pool.lease(spec, env={"EXTRA": "1"})
    assert server.lend is None
    lent = pool.lease(recycled(spec, recycle_after=1, recycle_rss_mib=None))
    assert lent.lend is not None  # the daemon's, once it starts
    pool.close(quick=False, settled=True)
