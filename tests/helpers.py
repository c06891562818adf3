"""Shared test helpers: waiting on published messages, isolated opencode environments."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pykka

from actors import ServerActor, ServerSpec
from mock.env import isolated_env  # noqa: F401 (the tests' import point)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Recorded from the real opencode 1.18.33 server (copied from shared/opencode/captures).
CAPTURES = PROJECT_ROOT / "tests" / "fixtures" / "captures"


class Inbox:
    """A thread-safe message sink standing in for the supervisor; tests wait on it."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self.seen: list[Any] = []

    def __call__(self, message: Any) -> None:
        self._queue.put(message)

    def expect(self, kind: type | tuple[type, ...], timeout: float) -> Any:
        """The next message of `kind`, skipping others (kept in `seen`); fail on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind} within {timeout}s; saw {self.seen!r}")
            try:
                message = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(message)
            if isinstance(message, kind):
                return message


def make_project(root: Path) -> Path:
    """A small git project with a README, like the one the captures were recorded in."""
    project = root / "proj"
    project.mkdir(parents=True)
    (project / "README.md").write_text("# Fixture project\n\nHello from the fixture.\n")
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    return project


def start_server(spec: ServerSpec, inbox: Inbox) -> pykka.ActorRef:
    """Start a ServerActor publishing into `inbox`."""
    return ServerActor.start(spec=spec, publish=inbox)


def runner_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m runner ARGS` to its end (its output captured), from the project's folder."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *map(str, args)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def group_alive(pgid: int) -> bool:
    """True while any process of the group exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
