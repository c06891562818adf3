"""The Ray executor's node side: `NodeRunner`, one actor per Ray node (runner.executors.ray.driver
starts it there). It owns the node's opencode servers (one per server key, shared by the phases
on the node as `--parallel` shares one) and the node's mock LLM, and runs each phase with the
same supervisor as the local executor (`start_phase`). `run` is a generator: every tick it hands
back what the phase added to its terminal output and transcript, and at the end its result; the
driver writes the real files. It imports nothing of Ray: the driver makes it an actor."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from actors.live import BoardRelay
from actors.process import ServerSpec
from core.errors import RunnerError
from runner import tuning
from runner._logs import debug_log, logger
from runner._mock import EmbeddedMock
from runner.executors.ray.remote import (
    Renames,
    Tail,
    TextBuffer,
    board_news,
    chunk,
    local_copy,
    renames,
)
from runner.phase import PhaseSpec
from runner.servers.keys import server_spec
from runner.servers.pool import ServerPool, start_ahead
from runner.servers.shared import SharedServer
from runner.supervisor.handle import CANCEL_WAIT, PhaseHandle, start_phase
from runner.supervisor.result import PhaseResult

TICK = 0.2  # how often a running phase's news go back to the driver
HEARTBEAT = 5.0  # a quiet phase still sends an empty chunk this often: the node is alive


class NodeRunner:
    """Runs phases on one node; its methods are called from the driver, several at once."""

    def __init__(
        self, node_id: str, env: Mapping[str, str], warm: Sequence[PhaseSpec] = ()
    ) -> None:
        self.node_id = node_id
        self._env = dict(env)
        self._lock = threading.Lock()
        self._root = Path(tempfile.mkdtemp(prefix="runner-node-"))
        # The node's servers: recycled as they age, replaced when they die (`ServerPool`).
        self._pool = ServerPool(self._env, spec_for=self._node_files)
        self._numbered = 0  # servers made, for their files' names
        self._mock: EmbeddedMock | None = None
        self._handles: dict[str, PhaseHandle] = {}
        self._early_cancel: dict[str, tuple[str, int]] = {}
        self._closed = False
        self._log = debug_log(str(self._root / "node.debug.log"))  # the node's own
        for spec in warm:  # the first phases' servers boot while the driver sends them
            start_ahead(self._pool.warm(spec, self._env_for(spec)))
        tuning.tune()  # this worker process is the node's own: the CLI's settings (README)

    def info(self) -> dict[str, Any]:
        """Who runs the phases here: the node, its host, this worker's pid and its parent's."""
        return {
            "node": self.node_id,
            "host": os.uname().nodename,
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "folder": str(self._root),
        }

    def run(self, run_id: str, spec: PhaseSpec, view: Mapping[str, Any]) -> Iterator[dict]:
        """Run one phase; yields chunks (`out`, `lines`), the last one with its `result` (or
        an `error`: the node could not run it)."""
        try:
            local, out, handle, relay, server = self._start(run_id, spec, view)
        except Exception as exc:  # the phase fails with why; the node goes on
            logger.exception("node {}: phase {} could not start", self.node_id, spec.name)
            yield {"out": "", "lines": [], "error": f"node {self.node_id}: {exc}"}
            return
        try:
            tail = Tail(local.output.transcript)
            yield from self._follow(handle, out, tail, renames(local, spec), relay)
        finally:  # the driver stopped listening: the phase must not run on unwatched
            with self._lock:
                self._handles.pop(run_id, None)
                self._early_cancel.pop(run_id, None)
            if not handle.done:
                handle.cancel("the driver stopped listening")
                with contextlib.suppress(TimeoutError):
                    handle.result(timeout=CANCEL_WAIT)
            ended = handle.result(timeout=0) if handle.done else None
            self._pool.release(server, exit_code=ended.exit_code if ended else 1)
            for path in (local.output.transcript, local.output.result):
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def _start(
        self, run_id: str, spec: PhaseSpec, view: Mapping[str, Any]
    ) -> tuple[PhaseSpec, TextBuffer, PhaseHandle, BoardRelay | None, SharedServer]:
        if not spec.directory.is_dir():
            raise RunnerError(f"{spec.directory} is not on this node (a shared filesystem?)")
        folder = self._root / run_id
        folder.mkdir(parents=True, exist_ok=True)
        local, out = local_copy(spec, folder), TextBuffer()
        env = self._env_for(local)
        server = self._pool.lease(local, env)
        relay = BoardRelay(_now_ms) if view.get("board") else None  # the driver's live table
        options = {key: value for key, value in view.items() if key != "board"}
        try:
            handle = start_phase(local, out=out, env=env, server=server, board=relay, **options)
        except BaseException:
            self._pool.release(server, exit_code=1)
            raise
        with self._lock:
            self._handles[run_id] = handle
            early = self._early_cancel.pop(run_id, None)
        if early is not None:
            handle.cancel(*early)
        return local, out, handle, relay, server

    def cancel(self, run_id: str, reason: str, exit_code: int) -> None:
        """Cancel a phase (one not started yet is cancelled as it starts)."""
        with self._lock:
            handle = self._handles.get(run_id)
            if handle is None:
                self._early_cancel[run_id] = (reason, exit_code)
        if handle is not None:
            handle.cancel(reason, exit_code)

    def shutdown(self, quick: bool) -> int:
        """Cancel what still runs, stop the servers and the mock; how many servers stopped."""
        with self._lock:
            self._closed = True
            handles = list(self._handles.values())
            mock, self._mock = self._mock, None
        for handle in handles:
            handle.cancel("the node is shutting down")
        for handle in handles:
            with contextlib.suppress(TimeoutError):
                handle.result(timeout=CANCEL_WAIT)
        stopped = self._pool.close(quick=quick, settled=False)
        if mock is not None:
            mock.__exit__(None, None, None)
        logger.info("node {}: {} server(s) stopped", self.node_id, stopped)
        logger.remove(self._log)
        return stopped

    def _follow(
        self,
        handle: PhaseHandle,
        out: TextBuffer,
        tail: Tail,
        pairs: Renames,
        relay: BoardRelay | None,
    ) -> Iterator[dict]:
        quiet = 0.0
        while True:
            try:
                result: PhaseResult | None = handle.result(timeout=TICK)
            except TimeoutError:
                result = None
            news = chunk(out, tail, pairs)
            if relay is not None:
                news["board"] = board_news(relay, pairs)
            if result is not None and not news["out"] and not news["lines"]:
                yield {**news, "result": result}  # the last chunk: everything else went first
                return
            quiet = 0.0 if news["out"] or news["lines"] else quiet + TICK
            if quiet == 0.0 or quiet >= HEARTBEAT:
                quiet = 0.0
                yield news

    def _env_for(self, spec: PhaseSpec) -> dict[str, str]:
        """The environment of the phase's server (with the node's mock, started on first use)."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"node {self.node_id} is shutting down")
            if spec.mock is not None and self._mock is None and "MOCK_LLM_URL" not in self._env:
                self._mock = EmbeddedMock([spec]).__enter__()
            return {**self._env, **(self._mock.env if self._mock else {})}

    def _node_files(self, phase: PhaseSpec, env: Mapping[str, str]) -> ServerSpec:
        """A new server's spec, its log and isolated data in the node's own folder (they
        outlive one phase). Called by the pool, under its lock."""
        spec = server_spec(phase, env)
        self._numbered += 1
        number = self._numbered
        data = str(self._root / f"server-{number}.opencode-data") if spec.data_dir else None
        log = str(self._root / f"server-{number}.log")
        return dataclasses.replace(spec, log_path=log, data_dir=data)


def _now_ms() -> int:
    return int(time.time() * 1000)
