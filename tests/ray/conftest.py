"""A Ray cluster on loopback for the Ray executor's tests: a head started with `ray start
--head --block` and a second node (tests.ray.node), one CPU each, every port on 127.0.0.1,
an isolated HOME for everything they start; both stopped (their process groups) afterwards.
Needs `make setup-ray`; `make test-ray` runs these tests, `make test` never collects them.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from actors.process import free_port
from tests.helpers import PROJECT_ROOT, isolated_env

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT = 60.0


@dataclass
class Cluster:
    address: str
    env: dict[str, str]
    head: subprocess.Popen
    second: subprocess.Popen
    second_id: str
    home: Path


def _wait_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "ray start --head exited"
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"the Ray head never listened on {port}")


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the second node never said it joined"
    return proc.stdout.readline().strip()


def stop_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group, SIGKILL whatever is left after `grace`."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if sig is signal.SIGTERM:  # the group's other members: raylet, workers
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        return


def ours(home: Path) -> list[int]:
    """Pids of live processes started with this HOME (opencode servers, Ray workers)."""
    found = []
    needle = f"HOME={home}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state != "Z":
            found.append(int(entry.name))
    return found


@contextlib.contextmanager
def loopback_cluster(root: Path, slots: int | None = 2) -> Iterator[Cluster]:
    """Head and a second node, `slots` phase slots each (None: no `runner_phase` resource, a
    plain cluster), loopback only, HOME under `root`; both stopped (their process groups) on
    leaving, with every process started with that HOME."""
    env = {
        **os.environ,
        **isolated_env(root),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep 127.0.0.1 (see tests.ray.node)
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    env.pop("OPENCODE_SERVER_PASSWORD", None)
    env.pop("RAY_ADDRESS", None)
    home = Path(env["HOME"])
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's socket paths must stay short
    resources = json.dumps({"runner_phase": slots} if slots is not None else {})
    with open(root / "head.log", "w") as head_log, open(root / "node.log", "w") as node_log:
        port = free_port()
        head = subprocess.Popen(
            [
                RAY,
                "start",
                "--head",
                "--block",
                "--node-ip-address=127.0.0.1",
                f"--port={port}",
                "--include-dashboard=false",
                "--disable-usage-stats",
                "--num-cpus=1",
                f"--resources={resources}",
                f"--temp-dir={temp}",
                "--object-store-memory=100000000",
                f"--dashboard-agent-listen-port={free_port()}",
            ],
            env=env,
            cwd=root,
            stdout=head_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        second = None
        try:
            _wait_port(port, head, START_TIMEOUT)
            address = f"127.0.0.1:{port}"
            second = subprocess.Popen(
                [sys.executable, "-m", "tests.ray.node", address, resources],
                env=env,
                cwd=PROJECT_ROOT,
                stdout=subprocess.PIPE,
                stderr=node_log,
                text=True,
                start_new_session=True,
            )
            line = _read_line(second, START_TIMEOUT)
            assert line.startswith("NODE "), line
            yield Cluster(address, env, head, second, line.split()[1], home)
        finally:
            if second is not None:
                stop_group(second)
            stop_group(head)
            for pid in ours(home):  # nothing we started may outlive the test
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def cluster(tmp_path):
    """Head (2 phase slots) and a second node (2 phase slots), loopback only."""
    with loopback_cluster(tmp_path) as running:
        yield running


@pytest.fixture
def plain_cluster(tmp_path):
    """Head and a second node of one CPU each and no custom resource, loopback only."""
    with loopback_cluster(tmp_path, slots=None) as running:
        yield running
