"""The embedding API: start phases from Python, watch their events, await or cancel them.

    handle = start_phase("phase.yaml", on_event=print)
    result = handle.result(timeout=600)          # PhaseResult

`run_phase(spec)` is `start_phase(spec).result()`. Several handles may run at once in one
process; `run_phases(specs, parallel=N)` runs them on one shared server and one event stream.
`on_event` is called on an observer actor's own thread, never on the stream's: a slow callback
delays only itself (it misses stream batches past its bound; records always reach it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from actors.process import Prespawned
from runner._mock import EmbeddedMock
from runner.batch import board_for
from runner.phase import PhaseSpec
from runner.servers.keys import server_key
from runner.servers.shared import servers_for
from runner.supervisor.handle import CANCEL_WAIT, PhaseHandle, run_phase, spec_of, start_phase
from runner.supervisor.result import PhaseResult

__all__ = [
    "CANCEL_WAIT",
    "Batch",
    "PhaseHandle",
    "PhaseResult",
    "PhaseSpec",
    "run_phase",
    "run_phases",
    "start_phase",
]


class Batch:
    """The handles of a `run_phases` call; cancelling it cancels running and later phases."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.handles: list[PhaseHandle] = []
        self.cancelled: str | None = None
        self._exit_code = 130

    def add(self, handle: PhaseHandle) -> None:
        """Track a started phase (cancelled at once if the batch already is)."""
        with self._lock:
            self.handles.append(handle)
            reason = self.cancelled
            code = self._exit_code
        if reason is not None:
            handle.cancel(reason, code)

    def discard(self, handle: Any) -> None:
        """Forget a phase that ended (a cancel no longer concerns it)."""
        with self._lock, contextlib.suppress(ValueError):
            self.handles.remove(handle)

    @property
    def exit_code(self) -> int:
        """The exit code phases cancelled by the batch end with."""
        return self._exit_code

    def each(self, one: Callable[[PhaseSpec], PhaseResult], specs: list[PhaseSpec], parallel: int):
        """`one(spec)` for every phase, `parallel` at a time, results in order; an interrupt
        while waiting cancels the batch (then goes on up)."""
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            try:
                return list(pool.map(one, specs))
            except BaseException:
                self.cancel("interrupted while waiting for the results")
                raise

    def cancel(self, reason: str, exit_code: int = 130) -> None:
        """Cancel every phase, now and to come."""
        with self._lock:
            if self.cancelled is None:  # the code first: `cancelled` is read without the lock
                self._exit_code = exit_code
                self.cancelled = reason
            handles = list(self.handles)
        for handle in handles:
            handle.cancel(reason, exit_code)


def run_phases(
    phases: Sequence[PhaseSpec | str | Path],
    *,
    parallel: int = 1,
    executor: Any = "local",
    batch: Batch | None = None,
    prespawned: Mapping[Any, Prespawned] | None = None,
    mock: EmbeddedMock | None = None,
    **options: Any,
) -> list[PhaseResult]:
    """Run phases, `parallel` at a time; phases asking for the same server share one.
    `executor`: "local" (this process), "ray" (a one-node Ray here; `RayExecutor(address=...)`
    for a cluster), or any object with `run(specs, parallel, batch, options)`."""
    specs = [spec_of(phase) for phase in phases]
    remote = _executor(executor)
    if not specs:
        return []
    if remote is not None:  # its nodes start their own mock LLM and servers
        return remote.run(specs, max(1, parallel), batch or Batch(), options)
    if mock is not None:  # started by the caller (the CLI, before its early servers)
        options["env"] = {**(options.get("env") or {}), **mock.env}  # start_phase starts none
        return _run_all(specs, parallel, batch, prespawned, options)
    with EmbeddedMock(specs) as ours:  # a phase's `mock` (runner._mock); the caller's wins
        options["env"] = {**ours.env, **(options.get("env") or {})}
        return _run_all(specs, parallel, batch, prespawned, options)


def _executor(executor: Any) -> Any:
    """None for the local executor, else the object that runs the batch."""
    if executor == "local":
        return None
    if executor == "ray":
        from runner.executors.ray.driver import RayExecutor  # (imports no Ray until it runs)

        return RayExecutor()
    if callable(getattr(executor, "run", None)):
        return executor
    raise ValueError(f"executor must be 'local', 'ray' or an object with run(), got {executor!r}")


def _run_all(
    specs: list[PhaseSpec],
    parallel: int,
    batch: Batch | None,
    prespawned: Mapping[Any, Prespawned] | None,
    options: dict[str, Any],
) -> list[PhaseResult]:
    servers = servers_for(specs, options.get("env") or {}, prespawned or {})
    batch = batch or Batch()
    options["board"] = board = board_for(options, parallel, len(specs))

    def one(spec: PhaseSpec) -> PhaseResult:
        prefix = spec.name if parallel > 1 else None
        handle = start_phase(spec, server=servers[server_key(spec)], prefix=prefix, **options)
        batch.add(handle)
        result = handle.result()
        batch.discard(handle)
        return result

    results: list[PhaseResult] = []
    try:
        results = batch.each(one, specs, parallel)
        return results
    finally:
        if board is not None:  # the table stays as the batch's summary
            board.stop()
        settled = bool(results) and all(result.exit_code == 0 for result in results)
        for shared in servers.values():
            shared.stop(quick=batch.cancelled is not None, settled=settled)
