"""The `done.command` as a process: its own group, bounded output, killed with the phase."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path

from actors.process import wait_exit

OUTPUT_LIMIT = 64 << 10  # the command's combined output is kept up to its last 64 KiB
OUTPUT_LINES = 40  # lines of that output quoted in a failure
DRAIN_GRACE = 5.0  # seconds to finish reading output once the command's group is gone


def _pump(fd: int, tail: bytearray) -> None:
    """Read `fd` to EOF (in a thread), keeping only the last `OUTPUT_LIMIT` bytes in `tail`."""
    with contextlib.suppress(OSError):
        while chunk := os.read(fd, 65536):
            tail += chunk
            del tail[: max(0, len(tail) - OUTPUT_LIMIT)]


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class CommandGuard:
    """Knows the `done.command` groups running for one phase, to kill them when it ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        self._closed = False

    def add(self, pgid: int) -> None:
        """A command started (killed at once if the phase has already ended)."""
        with self._lock:
            self._groups.add(pgid)
            closed = self._closed
        if closed:
            kill_group(pgid)

    def discard(self, pgid: int) -> None:
        """A command finished."""
        with self._lock:
            self._groups.discard(pgid)

    def kill(self) -> None:
        """The phase is over: no command of it may outlive it."""
        with self._lock:
            self._closed = True
            groups = list(self._groups)
        for pgid in groups:
            kill_group(pgid)


def run_command(
    command: str, directory: Path, timeout: float, guard: CommandGuard | None = None
) -> tuple[int | None, str]:
    """Run `command` in its own group; `(returncode, output)`, returncode None on timeout."""
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command],
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if guard is not None:
        guard.add(proc.pid)
    tail = bytearray()
    reader = threading.Thread(target=_pump, args=(proc.stdout.fileno(), tail), daemon=True)
    reader.start()
    returncode = None
    try:
        returncode = wait_exit(proc, timeout)
    finally:
        kill_group(proc.pid)  # leftovers (background jobs) die with it: no orphans
        proc.wait()
        if guard is not None:
            guard.discard(proc.pid)
    reader.join(DRAIN_GRACE)
    if not reader.is_alive():  # a process that escaped the group may still hold the pipe
        proc.stdout.close()
    text = bytes(tail).decode("utf-8", errors="replace").rstrip("\n")
    return returncode, "\n".join(text.splitlines()[-OUTPUT_LINES:])
