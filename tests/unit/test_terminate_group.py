"""`terminate_group`: a server's process group stopped by SIGTERM, a second one when the first
was taken (as opencode's npm install takes it), and SIGKILL as the last resort."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from actors.process import terminate_group

pytestmark = pytest.mark.timeout(30)

# Says "ready" once its handler is set; the handler takes the first SIGTERM and removes itself
# (npm's arborist does this to roll an install back), so the second one ends it.
TAKES_THE_FIRST = """
import signal, sys, time
def first(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    print("took it", flush=True)
signal.signal(signal.SIGTERM, first)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""
IGNORES = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""
EXITS = "import time; print('ready', flush=True); time.sleep(60)"


def started(code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_process_that_exits_on_sigterm_gets_one():
    proc = started(EXITS)
    began = time.monotonic()
    assert terminate_group(proc, grace=5) == -signal.SIGTERM
    assert time.monotonic() - began < 5  # no SIGKILL after the grace


def test_a_process_that_takes_the_first_sigterm_ends_on_the_second():
    proc = started(TAKES_THE_FIRST)
    began = time.monotonic()
    assert terminate_group(proc, grace=5) == -signal.SIGTERM
    assert time.monotonic() - began < 5  # well before the grace's SIGKILL
    assert proc.stdout.readline().strip() == "took it"


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace():
    proc = started(IGNORES)
    began = time.monotonic()
    assert terminate_group(proc, grace=0.5) == -signal.SIGKILL
    assert time.monotonic() - began >= 0.5
