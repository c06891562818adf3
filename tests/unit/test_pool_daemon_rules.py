"""The pool daemon's pure rules: which state file may be trusted, which environments are
interchangeable, which idle servers stop, and how `status` reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from actors.process import alive, wait_gone
from messages.server import ServerReady
from runner.cli.pool import is_daemon, status_text
from runner.servers import daemon
from runner.servers.daemon import Idle, when_to_stop
from runner.servers.lease import (
    PoolRefusedError,
    differences,
    environment_digest,
    judge_folder,
    judge_state,
    state_file,
)

pytestmark = pytest.mark.timeout(30)

STATE = json.dumps({"pid": 4242, "url": "http://127.0.0.1:5000", "token": "t"})


def test_a_state_file_of_the_user_readable_by_nobody_else_is_trusted():
    assert judge_state(0o100600, 1000, 1000, STATE)["pid"] == 4242


def test_a_state_file_of_another_user_is_refused_naming_both():
    with pytest.raises(PoolRefusedError, match=r"belongs to uid 0, not to you \(uid 1000\)"):
        judge_state(0o100600, 0, 1000, STATE)


@pytest.mark.parametrize("mode", [0o100644, 0o100640, 0o100602])
def test_a_state_file_others_may_read_or_write_is_refused_with_its_mode(mode):
    with pytest.raises(PoolRefusedError, match=f"mode {mode & 0o777:04o}, not 0600"):
        judge_state(mode, 1000, 1000, STATE)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not JSON"),
        ('{"pid": 1}', "lacks pid, url or token"),
        ('{"pid": 1, "url": "http://10.0.0.1:80", "token": "t"}', "no loopback daemon"),
        ('{"pid": "1", "url": "http://127.0.0.1:80", "token": "t"}', "no loopback daemon"),
    ],
)
def test_a_state_file_that_says_nothing_usable_is_refused(text, problem):
    with pytest.raises(PoolRefusedError, match=problem):
        judge_state(0o100600, 1000, 1000, text)


def test_a_folder_others_may_write_into_or_of_another_user_is_refused():
    judge_folder(0o40700, 1000, 1000)
    judge_folder(0o40755, 1000, 1000)  # others may read the folder, not the file
    with pytest.raises(PoolRefusedError, match=r"others may write into its folder \(mode 0777\)"):
        judge_folder(0o40777, 1000, 1000)
    with pytest.raises(PoolRefusedError, match="its folder belongs to uid 0"):
        judge_folder(0o40700, 0, 1000)


def test_the_state_file_lives_in_the_xdg_state_folder_or_under_home():
    assert str(state_file({"XDG_STATE_HOME": "/s", "HOME": "/h"})) == "/s/opencode-runner/pool.json"
    assert str(state_file({"HOME": "/h"})) == "/h/.local/state/opencode-runner/pool.json"


def test_environments_differ_by_what_opencode_reads_and_name_it():
    base = {"HOME": "/h", "PATH": "/bin", "TERM": "xterm", "OPENCODE_DISABLE_SHARE": "1"}
    config = '{"provider": {"x": {"options": {"apiKey": "{env:X_KEY}"}}}}'
    ours = environment_digest({**base, "X_KEY": "a"}, config)
    assert (
        differences(ours, environment_digest({**base, "X_KEY": "a", "TERM": "vt100"}, config)) == []
    )
    assert differences(ours, environment_digest({**base, "X_KEY": "b"}, config)) == ["X_KEY"]
    assert differences(ours, environment_digest({**base, "HOME": "/g", "X_KEY": "a"}, config)) == [
        "HOME"
    ]
    theirs = environment_digest({**base, "X_KEY": "a", "OPENCODE_EXPERIMENTAL": "1"}, config)
    assert differences(ours, theirs) == ["OPENCODE_EXPERIMENTAL"]
    unquoted = {"ANTHROPIC_API_KEY": "k2", "AWS_PROFILE": "p", "https_proxy": "http://p"}
    for name, value in unquoted.items():  # read by providers and their SDKs, never quoted
        theirs = environment_digest({**base, "X_KEY": "a", name: value}, config)
        assert differences(ours, theirs) == [name]


def test_what_the_runner_sets_per_server_and_the_secrets_themselves_never_travel():
    environ = {"HOME": "/h", "OPENCODE_SERVER_PASSWORD": "pw", "MOCK_LLM_URL": "http://m"}
    digest = environment_digest(environ, "{env:MOCK_LLM_URL}")
    assert "OPENCODE_SERVER_PASSWORD" not in digest
    assert "MOCK_LLM_URL" not in digest
    assert "/h" not in json.dumps(digest)  # digests, not values


def test_idle_servers_past_their_expiry_stop_oldest_first():
    idle = [Idle(1, 0.0), Idle(2, 50.0), Idle(3, 95.0)]
    assert when_to_stop(idle, now=100.0, expiry=40.0) == [1, 2]
    assert when_to_stop(idle, now=100.0, expiry=200.0) == []


def test_making_way_under_the_cap_takes_the_least_recently_used_idle_server():
    idle = [Idle(3, 95.0), Idle(1, 10.0), Idle(2, 50.0)]
    assert when_to_stop(idle, now=100.0, expiry=900.0, free_needed=1) == [1]
    assert when_to_stop(idle, now=100.0, expiry=60.0, free_needed=1) == [1]  # expired already
    assert when_to_stop(idle, now=100.0, expiry=60.0, free_needed=3) == [1, 2, 3]
    assert when_to_stop([], now=100.0, expiry=60.0, free_needed=2) == []  # leased ones never


def test_status_reads_one_line_a_server():
    status = {
        "pid": 7,
        "leases": 3,
        "phases": 5,
        "rss_mib": 41.2,
        "servers": [
            {
                "number": 1,
                "version": "1.18.33",
                "pid": 11,
                "served": 5,
                "leases": 3,
                "rss_mib": 640.4,
                "age_s": 75.0,
                "leased_to": None,
                "idle_s": 12.0,
            },
            {
                "number": 2,
                "version": None,
                "pid": None,
                "served": 0,
                "leases": 0,
                "rss_mib": None,
                "age_s": 1.0,
                "leased_to": None,
                "idle_s": None,
            },
            {
                "number": 3,
                "version": "1.18.33",
                "pid": 13,
                "served": 0,
                "leases": 1,
                "rss_mib": 300.0,
                "age_s": 9.0,
                "leased_to": 99,
                "idle_s": None,
            },
        ],
    }
    assert status_text(status, "http://127.0.0.1:1").splitlines() == [
        "runner pool: pid 7 at http://127.0.0.1:1 · 3 server(s) · 3 lease(s), 5 phase(s) served"
        " · 41 MiB",
        "  server 1: opencode 1.18.33 pid 11 · 5 phase(s) in 3 lease(s) · 640 MiB · age 75s"
        " · idle 12s",
        "  server 2: opencode ? pid - · 0 phase(s) in 0 lease(s) · ? MiB · age 1s · starting",
        "  server 3: opencode 1.18.33 pid 13 · 0 phase(s) in 1 lease(s) · 300 MiB · age 9s"
        " · leased to pid 99",
    ]


def test_a_process_that_ended_is_not_alive_even_before_it_is_reaped():
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    assert alive(child.pid)
    quit_event = threading.Event()
    seen = []
    watcher = threading.Thread(target=lambda: seen.append(wait_gone(child.pid, quit_event)))
    watcher.start()
    assert child.stdin is not None
    child.stdin.close()  # it ends; not reaped yet
    watcher.join(10)
    assert seen == [True]
    assert not alive(child.pid)  # a zombie until `wait`
    child.wait(5)
    assert not alive(child.pid)


def test_waiting_for_a_process_gives_up_when_told_or_at_its_timeout():
    quit_event = threading.Event()
    quit_event.set()
    assert wait_gone(os.getpid(), quit_event) is False
    assert wait_gone(os.getpid(), threading.Event(), timeout=0.05) is False


# -- the registry, with stand-in servers (no opencode) -------------------------------------------


class FakeServer:
    """What the registry asks of a `SharedServer`."""

    made: ClassVar[dict[int, FakeServer]] = {}  # by the daemon's number

    def __init__(self, spec, prespawned=None) -> None:
        FakeServer.made[int(Path(spec.log_path).stem)] = self
        self.spec = spec
        self.failed = False
        self.pid = None
        self.version = None
        self.stops: list[dict] = []
        self.stopped = threading.Event()

    def ready(self, cancelled=None):
        self.pid, self.version = 1000 + int(Path(self.spec.log_path).stem), "1.18.33"
        return ServerReady(
            url="http://127.0.0.1:1",
            version="1.18.33",
            password="pw",
            pid=self.pid,
            log_path=self.spec.log_path,
            attached=False,
        )

    def stop(self, **how) -> None:
        self.stops.append(how)
        self.stopped.set()


class FakeMock:
    url = "http://127.0.0.1:2/v1"

    def __init__(self, script) -> None:
        self.scripts = [script]

    def start(self):
        return self

    def reset(self, script):
        if script == "bad":
            raise ValueError("bad script")
        self.scripts.append(script)

    def stop(self) -> None:
        pass


@pytest.fixture
def registry(monkeypatch, tmp_path):
    FakeServer.made = {}
    monkeypatch.setattr(daemon, "SharedServer", FakeServer)
    monkeypatch.setattr(daemon, "MockLLM", FakeMock)
    monkeypatch.setattr(daemon, "start_ahead", lambda server: server.ready())
    now = [100.0]
    made = daemon.Registry(
        daemon.Settings(spare=1, max_servers=3, idle_expiry=60.0),
        tmp_path,
        ENVIRON,
        clock=lambda: now[0],
    )
    made.now = now
    yield made
    made.close()


ENVIRON = {"HOME": "/h", "PATH": "/bin"}


def ask(**more):
    return {
        "binary": "/oc",
        "config_content": "{}",
        "script": "s.json",
        "lessee": os.getpid(),
        "environment": environment_digest(ENVIRON, "{}"),
        **more,
    }


def servers(registry):
    return {s["number"]: s for s in registry.status()["servers"]}


def test_a_lease_takes_a_server_and_a_spare_starts_beside_it(registry):
    lent = registry.lease(ask())
    assert (lent["number"], lent["warm"], lent["served"]) == (1, False, 0)
    assert servers(registry)[2]["leased_to"] is None  # the spare, up
    again = registry.lease(ask())
    assert (again["number"], again["warm"]) == (2, True)
    registry.release(lent["id"], phases=3, settled=True)
    after = registry.lease(ask())
    assert (after["number"], after["served"]) == (1, 3)  # the most recently given back


def test_a_lease_that_may_not_wait_takes_only_a_warm_server(registry):
    first = registry.lease(ask())
    registry.lease(ask())  # the spare; a spare of its own
    registry.lease(ask())  # that one: none more fits under the cap
    with pytest.raises(daemon.LeaseRefusedError, match="no warm server"):
        registry.lease(ask(wait=False))
    registry.release(first["id"], phases=1, settled=True)
    assert registry.lease(ask(wait=False))["number"] == 1


def test_a_full_pool_makes_way_only_with_idle_servers(registry):
    leased = [
        registry.lease(
            ask(config_content=f"{{{n}}}", environment=environment_digest(ENVIRON, f"{{{n}}}"))
        )
        for n in range(3)
    ]
    assert len(servers(registry)) == 3  # the cap: no spares beyond it
    with pytest.raises(daemon.LeaseRefusedError, match=r"it is full: 3 server\(s\)"):
        registry.lease(ask(config_content="{9}", environment=environment_digest(ENVIRON, "{9}")))
    registry.release(leased[0]["id"], phases=1, settled=True)
    registry.now[0] += 1
    made = registry.lease(ask(config_content="{9}", environment=environment_digest(ENVIRON, "{9}")))
    assert made["number"] not in [lent["number"] for lent in leased]
    assert leased[0]["number"] not in servers(registry)  # the idle one made way
    assert FakeServer.made[leased[0]["number"]].stopped.wait(5)


def test_a_server_given_back_recycled_or_unsettled_stops_and_a_spare_replaces_it(registry):
    lent = registry.lease(ask())
    entry = FakeServer.made[1]
    answer = registry.release(lent["id"], phases=1, settled=True, recycle=True)
    assert answer["recycled"] == "the run that leased it recycled it"
    assert entry.stopped.wait(5)
    assert entry.stops == [{"settled": True}]
    other = registry.lease(ask())
    unsettled = FakeServer.made[other["number"]]
    registry.release(other["id"], phases=1, settled=False)
    assert unsettled.stopped.wait(5)
    assert unsettled.stops == [{"settled": False}]  # its busy sessions are aborted
    assert any(s["leased_to"] is None for s in servers(registry).values())  # a spare again


def test_a_bad_script_refuses_the_lease_but_keeps_the_server(registry):
    with pytest.raises(daemon.LeaseRefusedError, match="cannot serve the script: bad script"):
        registry.lease(ask(script="bad"))
    assert servers(registry)[1]["leased_to"] is None


def test_another_environment_is_refused_naming_what_differs(registry):
    with pytest.raises(daemon.LeaseRefusedError, match=r"another environment \(HOME differ\)"):
        registry.lease(ask(environment=environment_digest({**ENVIRON, "HOME": "/g"}, "{}")))


def test_the_sweep_drops_failed_idle_servers_and_expires_idle_ones(registry):
    lent = registry.lease(ask())
    spare = FakeServer.made[2]
    spare.failed = True  # it never started
    registry.sweep()
    assert 2 not in servers(registry)
    registry.release(lent["id"], phases=1, settled=True)
    registry.now[0] += 61
    registry.sweep()
    assert servers(registry) == {}


def test_a_lessee_that_is_gone_has_its_server_stopped_with_a_sweep(registry):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(10)
    registry.lease(ask(lessee=gone.pid))
    entry = FakeServer.made[1]
    registry.sweep()
    assert entry.stopped.wait(5)
    assert entry.stops == [{"settled": False}]


def test_only_a_process_of_ours_running_the_daemon_is_taken_for_it(tmp_path):
    def process(pid, *argv):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    process(10, "/venv/bin/python", "-m", "runner", "up", "--foreground", "--spare=1")
    process(11, "/usr/bin/vim", "notes.md")
    process(12, "/venv/bin/python", "-m", "runner", "phase.yaml")
    assert is_daemon(10, proc=str(tmp_path))
    assert not is_daemon(11, proc=str(tmp_path))
    assert not is_daemon(12, proc=str(tmp_path))
    assert not is_daemon(13, proc=str(tmp_path))  # gone
