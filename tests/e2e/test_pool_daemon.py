"""The pool daemon as a user drives it: `python -m runner up`, runs that lease warm servers from
it, `status`, `down`, and its faults (issue 25): the daemon or a leased server SIGKILLed
mid-phase, a run killed with its lease, recycling under load, state files that must not be
used, a full pool, another environment, two runs at once.

Every test has a HOME and state folder of its own, so its daemon is its own; `down` (or the
kill) ends it, and the test checks that no opencode it started is left.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from actors.process import alive
from tests.helpers import PROJECT_ROOT, isolated_env, make_project, runner_cli

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

POOL = "from the runner pool"
WARM = f"warm {POOL}"
NOTE = "---\ntitle: Note\nauthor: mock\n---\n\nHello.\n"


def write_turn(text="Writing the note."):
    return {
        "text": text,
        "tool_calls": [
            {"name": "write", "arguments": {"filePath": "notes/note.md", "content": NOTE}}
        ],
    }


QUICK = {"turns": [write_turn(), {"text": "Done: the note is written."}]}
# The second turn streams for about 20 s: time to kill something while it runs.
SLOW = {"turns": [write_turn(), {"text": ["word "] * 40, "delay": 0.5}]}


class Pool:
    """One test's daemon and the runs that lease from it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, **isolated_env(root)}
        self.env.pop("OPENCODE_SERVER_PASSWORD", None)
        self.state = Path(self.env["XDG_STATE_HOME"]) / "opencode-runner" / "pool.json"
        self.count = 0

    def runner(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
        return runner_cli(*args, env=env or self.env, timeout=timeout)

    def up(self, *flags: str, spare: bool = False) -> int:
        """The daemon, up; without a warm spare unless the test is about it (each spare is an
        opencode start: CPU the other tests of the run share)."""
        done = self.runner("up", *flags, *(() if spare else ("--spare", "0")))
        assert done.returncode == 0, done.stderr
        assert "runner pool up: pid" in done.stdout, done.stdout
        return self.pid

    @property
    def pid(self) -> int:
        return json.loads(self.state.read_text())["pid"]

    def status(self) -> dict:
        done = self.runner("status", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def phase(self, script: dict, *, shared: bool = False) -> Path:
        """A phase file on `script` (`shared`: one script file for phases of one run)."""
        self.count += 1
        name = f"p{self.count}"
        folder = self.root / name
        project = make_project(folder)
        script_path = (self.root if shared else folder) / "script.json"
        script_path.write_text(json.dumps(script))
        phase = {
            "name": name,
            "prompt": "Write notes/note.md with front matter (title, author).",
            "model": "test/mock-model",
            "mock": str(script_path),
            "directory": str(project),
            "permissions": {"allow": ["edit", "read"]},
            "done": {"artifacts": ["notes/note.md"]},
            "timeouts": {"phase": "2m", "stall": "1m"},
        }
        path = folder / "phase.yaml"
        path.write_text(yaml.safe_dump(phase))
        return path

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "runner", *args, "--json"],
            cwd=PROJECT_ROOT,
            env=env or self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def run(self, *args: str, env: dict[str, str] | None = None) -> Run:
        proc = self.start(*args, env=env)
        stdout, stderr = proc.communicate(timeout=120)
        return Run(proc.returncode, stdout, stderr)

    def interrupted(self, act: Callable[[subprocess.Popen, int], Any]) -> tuple[Run, Any]:
        """A slow phase's run, and what `act(proc, leased_pid)` returned, called while its
        second turn streams."""
        proc = self.start(str(self.phase(SLOW)))
        try:
            wait_line(proc, '"tool_use"')
            (leased,) = [s["pid"] for s in self.status()["servers"] if s["leased_to"] == proc.pid]
            acted = act(proc, leased)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            reaped(proc)
        return Run(proc.returncode, stdout, stderr), acted


class Run:
    """A finished CLI run: its exit code, its NDJSON lines and its result line."""

    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code = code
        self.stderr = stderr
        self.lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        self.results = [line for line in self.lines if line.get("type") == "runner.result"]
        self.result = self.results[0] if self.results else {}

    def text(self) -> str:
        return "".join(
            line["part"].get("text", "") for line in self.lines if line.get("type") == "text"
        )


def wait_line(proc: subprocess.Popen, wanted: str, timeout: float = 60) -> list[str]:
    """Read the run's stdout until a line holds `wanted`; the lines read."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([proc.stdout], [], [], left)[0]:
            break
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if wanted in line:
            return seen
    raise AssertionError(f"no {wanted!r} within {timeout}s: {seen[-5:]}")


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Until `check()` (the daemon's sweep runs every second): bounded."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)


def reaped(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


@pytest.fixture
def pool(tmp_path):
    pool = Pool(tmp_path)
    yield pool
    if pool.state.exists():
        servers = [s["pid"] for s in pool.status()["servers"] if s["pid"]]
        daemon = pool.pid
        done = pool.runner("down")
        assert done.returncode == 0, done.stderr
        assert not alive(daemon)
        assert not [pid for pid in servers if alive(pid)]


def test_runs_lease_warm_servers_and_status_and_down_tell_the_truth(pool):
    daemon = pool.up(spare=True)
    assert pool.state.stat().st_mode & 0o777 == 0o600
    first = pool.run(str(pool.phase(QUICK)))
    second = pool.run(str(pool.phase(QUICK)))
    for run in (first, second):
        assert run.code == 0, run.stderr[-2000:]
        assert run.result["verdict"] == "done"
        assert f"{POOL} (daemon pid {daemon})" in run.result["server_origin"]
    assert first.result["server_origin"].startswith("started from")  # its lease started it
    assert second.result["server_origin"].startswith("warm from")
    assert first.result["server_pid"] == second.result["server_pid"]  # warm, and the same
    assert "1 phase(s) served before" in second.result["server_origin"]
    status = pool.status()
    (used,) = [s for s in status["servers"] if s["pid"] == first.result["server_pid"]]
    assert (used["served"], used["leases"], used["leased_to"]) == (2, 2, None)
    assert len(status["servers"]) == 2  # and its warm spare
    # The transcript names the server; `show` prints the banner line the live run printed.
    transcript = Path(second.result["transcript"])
    header = json.loads(transcript.read_text().splitlines()[0])
    assert WARM in header["server_origin"]
    shown = pool.runner("show", str(transcript), "--plain")
    assert f"server {second.result['server_url']} · {WARM}" in shown.stdout
    text = pool.runner("status")
    assert f"runner pool: pid {daemon}" in text.stdout
    assert "2 phase(s) in 2 lease(s)" in text.stdout
    servers = [s["pid"] for s in status["servers"]]
    down = pool.runner("down")
    assert down.returncode == 0, down.stderr
    assert f"runner pool (pid {daemon}) stopped with its 2 server(s)" in down.stdout
    assert not alive(daemon)
    assert not [pid for pid in servers if alive(pid)]
    assert not pool.state.exists()
    again = pool.runner("status")
    assert (again.returncode, again.stdout.strip()) == (1, "runner pool: not running")


def test_the_daemon_killed_mid_phase_takes_its_servers_and_the_next_run_goes_on_alone(pool):
    daemon = pool.up()

    def kill_daemon(_proc, _leased):
        servers = [s["pid"] for s in pool.status()["servers"]]
        os.kill(daemon, signal.SIGKILL)
        return servers

    run, servers = pool.interrupted(kill_daemon)
    assert run.code == 1, run.stderr[-2000:]
    assert run.result["verdict"] == "failed"
    assert "the leased opencode server (pid" in run.result["reason"], run.result["reason"]
    wait_for(lambda: not [pid for pid in servers if alive(pid)], 10, "the servers die with it")
    after = pool.run(str(pool.phase(QUICK)))
    assert after.code == 0, after.stderr[-2000:]
    assert after.result["server_origin"] is None
    assert f"the runner pool (pid {daemon}) is gone; removed its stale state file" in after.stderr
    assert len([line for line in after.stderr.splitlines() if "runner pool" in line]) == 1
    assert not pool.state.exists()


def test_a_leased_server_killed_fails_its_phase_with_its_log_and_is_replaced(pool):
    pool.up()
    run, leased = pool.interrupted(lambda _proc, leased: os.kill(leased, signal.SIGKILL) or leased)
    assert run.code == 1, run.stderr[-2000:]
    assert run.result["verdict"] == "failed"
    assert f"the leased opencode server (pid {leased}) died" in run.result["reason"]
    assert run.result["server_log_tail"], "the server's log tail"
    wait_for(
        lambda: leased not in [s["pid"] for s in pool.status()["servers"]], 10, "it is dropped"
    )
    after = pool.run(str(pool.phase(QUICK)))
    assert after.code == 0, after.stderr[-2000:]
    assert POOL in after.result["server_origin"]
    assert after.result["server_pid"] != leased


def test_a_run_killed_with_its_lease_has_its_server_stopped(pool):
    pool.up()
    run, leased = pool.interrupted(lambda proc, leased: reaped(proc) or leased)  # no release
    assert run.code == -signal.SIGKILL
    wait_for(lambda: not alive(leased), 40, "the daemon stops the server of a run gone")
    assert leased not in [s["pid"] for s in pool.status()["servers"]]


def test_recycling_under_load_interrupts_no_phase(pool):
    pool.up("--max-servers", "6")  # the daemon's own limits are out of reach: the run recycles
    phases = [str(pool.phase(QUICK, shared=True)) for _ in range(6)]
    run = pool.run(*phases, "--parallel", "2", "--recycle-after", "2")
    assert run.code == 0, run.stderr[-2000:]
    assert [r["verdict"] for r in run.results] == ["done"] * 6
    pids = {r["server_pid"] for r in run.results}
    assert len(pids) >= 3, pids  # two phases a server, each lent by the daemon
    assert all(POOL in r["server_origin"] for r in run.results)
    # The servers the run retired go back marked so, and the daemon stops them; the last one,
    # given back as the run ended, stays warm.
    wait_for(lambda: len([p for p in pids if alive(p)]) <= 1, 40, "the recycled servers stop")
    status = pool.status()
    assert status["phases"] == 6
    assert {s["pid"] for s in status["servers"]} & pids == {p for p in pids if alive(p)}


def test_two_runs_at_once_lease_two_servers_with_no_cross_talk(pool):
    pool.up()
    scripts = [
        {"turns": [write_turn(f"Run {n} writes."), {"text": f"Run {n} is done."}]} for n in (1, 2)
    ]
    procs = [pool.start(str(pool.phase(script))) for script in scripts]
    runs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        runs.append(Run(proc.returncode, stdout, stderr))
    for n, run in enumerate(runs, 1):
        assert run.code == 0, run.stderr[-2000:]
        assert POOL in run.result["server_origin"]
        assert run.text() == f"Run {n} writes.Run {n} is done."
    assert runs[0].result["server_pid"] != runs[1].result["server_pid"]
    assert runs[0].result["session_id"] != runs[1].result["session_id"]


def test_a_full_pool_refuses_and_the_run_starts_its_own_server(pool):
    pool.up("--max-servers", "1")

    def another_run(proc, _leased):
        other = pool.run(str(pool.phase(QUICK)))  # while the only server is lent
        reaped(proc)
        return other

    _, run = pool.interrupted(another_run)
    assert run.code == 0, run.stderr[-2000:]
    assert run.result["server_origin"] is None
    (line,) = [line for line in run.stderr.splitlines() if "runner pool" in line]
    assert "it is full: 1 server(s) (max_servers 1), none idle" in line
    assert line.endswith("starting a server of its own")


def test_a_run_in_another_environment_is_refused(pool):
    pool.up()
    other = {**pool.env, "OPENCODE_EXPERIMENTAL": "1"}
    run = pool.run(str(pool.phase(QUICK)), env=other)
    assert run.code == 0, run.stderr[-2000:]
    assert run.result["server_origin"] is None
    assert "another environment (OPENCODE_EXPERIMENTAL differ)" in run.stderr


def test_a_state_file_others_may_read_is_refused_and_never_used(pool):
    pool.up()
    pool.state.chmod(0o644)
    try:
        run = pool.run(str(pool.phase(QUICK)))
    finally:
        pool.state.chmod(0o600)
    assert run.code == 0, run.stderr[-2000:]
    assert run.result["server_origin"] is None
    assert "others may read or write it (mode 0644, not 0600): refused" in run.stderr
    assert pool.status()["leases"] == 0


def test_a_stale_state_file_is_said_once_and_removed(pool, tmp_path):
    pool.state.parent.mkdir(parents=True, exist_ok=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(10)  # a process id nobody has now
    descriptor = os.open(pool.state, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump({"pid": gone.pid, "url": "http://127.0.0.1:9", "token": "x"}, file)
    first = pool.run(str(pool.phase(QUICK)))
    second = pool.run(str(pool.phase(QUICK)))
    assert (first.code, second.code) == (0, 0), first.stderr[-2000:]
    assert f"the runner pool (pid {gone.pid}) is gone" in first.stderr
    assert "runner pool" not in second.stderr
    assert not pool.state.exists()


def test_up_with_phases_starts_their_servers_so_the_first_run_is_warm(pool):
    phase = pool.phase(QUICK)
    done = pool.runner("up", str(phase))
    assert done.returncode == 0, done.stderr
    assert "server 1 (opencode " in done.stdout
    assert "is warm for p1" in done.stdout
    run = pool.run(str(phase))
    assert run.code == 0, run.stderr[-2000:]
    assert run.result["server_origin"].startswith(f"{WARM} (daemon pid {pool.pid}): server 1,")
    again = pool.runner("up")
    assert (again.returncode, again.stdout.split(":")[0]) == (0, "runner pool already up")


def test_down_while_a_run_leases_ends_its_phase_with_a_clear_verdict(pool):
    daemon = pool.up()
    run, (leased, down) = pool.interrupted(lambda _proc, leased: (leased, pool.runner("down")))
    assert down.returncode == 0, down.stderr
    assert not alive(daemon)
    assert not alive(leased)
    assert (run.code, run.result["verdict"]) == (1, "failed"), run.result
    assert f"the leased opencode server (pid {leased}) died" in run.result["reason"]


def test_down_force_stops_a_daemon_that_does_not_answer(pool):
    daemon = pool.up(str(pool.phase(QUICK)))
    servers = [s["pid"] for s in pool.status()["servers"]]
    os.kill(daemon, signal.SIGSTOP)  # it hangs
    try:
        refused = pool.runner("down")
        assert refused.returncode == 1
        assert f"the runner pool (pid {daemon}) at" in refused.stderr
        assert "does not answer" in refused.stderr
        assert "down --force` stops it anyway" in refused.stderr
        forced = pool.runner("down", "--force")
    finally:
        os.kill(daemon, signal.SIGCONT)
    assert forced.returncode == 0, forced.stderr
    assert f"runner pool (pid {daemon}) stopped by force" in forced.stdout
    assert not alive(daemon)
    wait_for(lambda: not [pid for pid in servers if alive(pid)], 10, "its servers stop with it")
    assert not pool.state.exists()
