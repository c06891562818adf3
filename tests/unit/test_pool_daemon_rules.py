"""The pool daemon's pure rules: which state file may be trusted, which environments are
interchangeable, which idle servers stop, and how `status` reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from actors.process import alive, wait_gone
from runner.cli.pool import status_text
from runner.servers.daemon import Idle, when_to_stop
from runner.servers.lease import (
    PoolRefusedError,
    differences,
    environment_digest,
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
