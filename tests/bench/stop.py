"""How long a phase's server takes to stop on a fresh HOME, while opencode installs its
configuration folder's packages.

opencode installs `@opencode-ai/plugin` into its configuration folder whenever that folder
lacks it (a fresh HOME, a CI runner, an air-gapped machine), with npm's arborist inside its own
process, and arborist takes the first SIGTERM that arrives meanwhile (to roll the install back).
Each run here is `python -m runner phase.yaml --json` on a fresh HOME whose npm registry is a
loopback one that answers the package's metadata and never sends its tarball, so every stop
lands in the middle of that install, as it does on a slow or dying network. The figure is the
server's stop as the runner logs it (`ServerActor stopped (…s)` in the debug log): from the
stop's start to the process group's end. The goal (issue 21): a median of at most 0.5 s.
"""

from __future__ import annotations

import http.server
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mock.env import opencode_env
from tests.bench.wall import PINNED_BINARY
from tests.helpers import PROJECT_ROOT, make_project

TIMEOUT = 120.0
STOPPED = re.compile(r"ServerActor stopped \((\d+\.\d+)s\)")
TAKEN = "still runs after SIGTERM"  # the runner's debug line when a SIGTERM was taken


@dataclass(frozen=True, slots=True)
class Sizes:
    """Timed runs (the median is the figure)."""

    runs: int = 5


class StalledRegistry:
    """A loopback npm registry: any package's metadata, at `version`, whose tarball never
    comes (the connection stays open until the registry stops)."""

    def __init__(self, version: str) -> None:
        stop = self._stop = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.endswith(".tgz"):
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self.wfile.flush()
                    stop.wait(TIMEOUT)
                    return
                name = self.path.lstrip("/").replace("%2f", "/").replace("%2F", "/")
                url = f"http://127.0.0.1:{self.server.server_address[1]}/package.tgz"
                meta = {"name": name, "version": version, "dist": {"tarball": url}}
                body = json.dumps(
                    {"name": name, "dist-tags": {"latest": version}, "versions": {version: meta}}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


def one_stop(root: Path, registry: str) -> tuple[float | None, bool, int]:
    """One phase on a fresh HOME: the server's stop in seconds (None: not logged), whether the
    install took a SIGTERM, and the CLI's exit code."""
    root.mkdir(parents=True)
    script = {"turns": [{"text": ["Hello ", "from the mock."]}]}
    (root / "script.json").write_text(json.dumps(script))
    phase = {
        "name": "stop",
        "prompt": "Say hello.",
        "model": "test/mock-model",
        "mock": str(root / "script.json"),
        "directory": str(make_project(root)),
        "timeouts": {"phase": "2m", "stall": "1m"},
    }
    path = root / "phase.yaml"
    path.write_text(yaml.safe_dump(phase))
    env = {**opencode_env(root, installed=False), "npm_config_registry": registry}
    proc = subprocess.run(
        [sys.executable, "-m", "runner", str(path), "--json"],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    debug = "".join(p.read_text() for p in (root / "runs").glob("*.debug.log"))
    stopped = STOPPED.search(debug)
    return (float(stopped.group(1)) if stopped else None), TAKEN in debug, proc.returncode


def run(out: Callable[[str], None], sizes: Sizes) -> dict[str, Any]:
    """Stop `sizes.runs` phases' servers mid-install; print each and the median."""
    if not PINNED_BINARY.exists():
        raise RuntimeError(f"the pinned opencode binary is missing ({PINNED_BINARY}): make setup")
    version = subprocess.run(
        [str(PINNED_BINARY), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    registry = StalledRegistry(version)
    runs: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="runner-bench-stop-") as tmp:
            for index in range(sizes.runs):
                seconds, taken, code = one_stop(Path(tmp) / f"run{index}", registry.url)
                runs.append({"s": seconds, "install_took_sigterm": taken, "exit_code": code})
    finally:
        registry.close()
    known = [r["s"] for r in runs if r["s"] is not None]
    median = statistics.median(known) if known else None
    taken = sum(r["install_took_sigterm"] for r in runs)
    shown = " ".join("-" if r["s"] is None else f"{r['s']:.2f}" for r in runs)
    out(f"  server stop on a fresh HOME mid-install, {sizes.runs} runs: {shown} s")
    out(f"  median {'-' if median is None else f'{median:.2f}'} s (goal <= 0.5 s); the install")
    out(f"  took the first SIGTERM in {taken} of {sizes.runs} runs")
    return {"runs": runs, "median_s": median, "install_took_sigterm": taken}
