"""`wait_exit`: a process's end, woken by its pidfd, whoever reaps it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from actors import process
from actors.process import wait_exit

pytestmark = pytest.mark.timeout(30)

UNTIL_STDIN_CLOSES = [sys.executable, "-c", "import sys; sys.stdin.read(); sys.exit(7)"]


@pytest.fixture
def waiting():
    """A process that runs until its stdin is closed, then exits 7; killed if a test fails."""
    proc = subprocess.Popen(UNTIL_STDIN_CLOSES, stdin=subprocess.PIPE)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_the_exit_code_of_a_process_that_ends():
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    assert wait_exit(proc, 10) == 3


def test_none_while_it_runs_past_the_timeout_then_its_code(waiting):
    assert wait_exit(waiting, 0.2) is None
    assert waiting.poll() is None
    waiting.stdin.close()
    assert wait_exit(waiting, 10) == 7


def test_another_thread_reaping_it_meanwhile(waiting):
    reaper = threading.Thread(target=waiting.wait)  # as the server actor's waiter thread does
    reaper.start()
    waiting.stdin.close()
    assert wait_exit(waiting, 10) == 7
    reaper.join(10)
    assert not reaper.is_alive()


def test_a_process_reaped_already_is_not_looked_up_again(waiting, monkeypatch):
    waiting.stdin.close()
    waiting.wait()
    opened = []
    monkeypatch.setattr(os, "pidfd_open", opened.append)  # its pid may belong to another now
    assert wait_exit(waiting, 10) == 7
    assert opened == []


def test_woken_by_the_pidfd_not_by_polling(waiting, monkeypatch):
    watched = []
    make_poller = process.select.poll

    class Recording:
        def __init__(self):
            self._poller = make_poller()

        def register(self, fd, mask):
            watched.append(fd)
            self._poller.register(fd, mask)

        def poll(self, timeout):
            waiting.stdin.close()  # it ends while we wait on its pidfd
            return self._poller.poll(timeout)

    monkeypatch.setattr(process.select, "poll", Recording)
    assert wait_exit(waiting, 10) == 7
    assert len(watched) == 1
    assert isinstance(watched[0], int)


def test_without_pidfds_it_still_waits(waiting, monkeypatch):
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    waiting.stdin.close()
    assert wait_exit(waiting, 10) == 7
