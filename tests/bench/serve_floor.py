"""The floor under any client of `opencode serve`: the wall benchmark's third column.

`serve_floor` drives `opencode serve` from the benchmark's own process with the least a client
can do: spawn it, read its listening line, ask its health, open the event stream, create a
session, send the prompt, read events until the session is idle with the answer, SIGTERM it.
No interpreter starts, nothing is imported, nothing is written, nothing is checked. It is not a
runner: it splits the runner's wall time into opencode's serve path (floor / `opencode run`)
and the runner's own share (runner / floor).
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import requests

from actors.process import free_port, signal_group
from mock import MockLLM, opencode_provider_config
from tests.bench.wall import MODEL, PINNED_BINARY, PROMPT, TIMEOUT, Outcome, script
from tests.helpers import make_project

PASSWORD = "bench-floor"
ANSWER = b"says hello from the fixture."  # the script's final text, whole in its last update
HTTP_TIMEOUT = 10.0


def serve_floor(root: Path, env: dict[str, str]) -> Outcome:
    """One timed run; exit code 0 when the session went idle after the answer, else 1."""
    project = make_project(root)
    with MockLLM(script(project)) as mock:
        config = json.dumps(opencode_provider_config(mock.url))
        extra = {"OPENCODE_CONFIG_CONTENT": config, "OPENCODE_SERVER_PASSWORD": PASSWORD}
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(PINNED_BINARY), "serve", "--hostname", "127.0.0.1", "--port", str(free_port())],
            cwd=project,
            env={**env, **extra},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        # a hang ends any wait here
        watchdog = threading.Timer(TIMEOUT, signal_group, (proc.pid, signal.SIGKILL))
        watchdog.start()
        try:
            answered = _drive(proc, project)
            proc.terminate()  # as a client stops its server: SIGTERM, then wait
            proc.wait()  # waitpid, woken at its end (`wait(timeout)` would poll)
        finally:
            watchdog.cancel()
            signal_group(proc.pid, signal.SIGKILL)  # whatever it left in its group
            proc.wait()
        return Outcome(time.perf_counter() - start, 0 if answered else 1, (), None, None)


def _drive(proc: subprocess.Popen[str], project: Path) -> bool:
    """Health, stream, session, prompt; True once the session is idle after the answer."""
    url = next((line.split()[-1] for line in proc.stdout or () if "listening on" in line), None)
    if url is None:
        return False
    query = {"directory": str(project)}
    with requests.Session() as http:
        http.auth = ("opencode", PASSWORD)
        http.get(f"{url}/global/health", timeout=HTTP_TIMEOUT).raise_for_status()
        reads = (HTTP_TIMEOUT, TIMEOUT)
        stream = http.get(f"{url}/event", params=query, stream=True, timeout=reads)
        with stream:
            made = http.post(f"{url}/session", params=query, json={"title": "bench"}, timeout=10)
            session = made.json()["id"]
            provider, model = MODEL.split("/", 1)
            prompt = {"providerID": provider, "modelID": model}
            body = {"parts": [{"type": "text", "text": PROMPT}], "model": prompt}
            sent = http.post(
                f"{url}/session/{session}/prompt_async", params=query, json=body, timeout=10
            )
            sent.raise_for_status()
            return _idle_after_answer(stream.iter_lines(), session.encode())


def _idle_after_answer(lines: Iterable[bytes], session: bytes) -> bool:
    answered = False
    for line in lines:
        answered = answered or ANSWER in line
        if b'"session.idle"' in line and session in line:
            return answered
    return False
