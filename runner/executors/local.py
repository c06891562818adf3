"""The local executor: a batch of phases in this process, `parallel` at a time, phases that
ask for the same server sharing one (`runner.servers`). `Batch` holds their handles, so that
cancelling it (Ctrl-C, a signal, the embedder) cancels the running phases and those to come.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from actors.process import Prespawned
from runner.batch import board_for
from runner.phase import PhaseSpec
from runner.servers.lease import Leases
from runner.servers.pool import ServerPool
from runner.supervisor.handle import PhaseHandle, start_phase
from runner.supervisor.result import PhaseResult

__all__ = ["Batch", "run_here"]


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


def run_here(
    specs: list[PhaseSpec],
    parallel: int,
    batch: Batch | None,
    prespawned: Mapping[Any, Prespawned] | None,
    options: dict[str, Any],
    *,
    leases: Leases | None = None,
    leased: Mapping[Any, Any] | None = None,
) -> list[PhaseResult]:
    """Run `specs` here, `parallel` at a time, each on the server its key names; the results
    in order. The servers are leased from the batch's pool, recycled as they age, and stop
    with the batch (`leases`: the pool daemon lends them, `leased` the first ones)."""
    pool = ServerPool(options.get("env") or {}, prespawned or {}, leases=leases, leased=leased)
    batch = batch or Batch()
    options["board"] = board = board_for(options, parallel, len(specs))

    def one(spec: PhaseSpec) -> PhaseResult:
        prefix = spec.name if parallel > 1 else None
        server = pool.lease(spec)
        exit_code = 1
        try:
            handle = start_phase(spec, server=server, prefix=prefix, **options)
            batch.add(handle)
            result = handle.result()
            batch.discard(handle)
            exit_code = result.exit_code
            return result
        finally:
            pool.release(server, exit_code=exit_code)

    results: list[PhaseResult] = []
    try:
        results = batch.each(one, specs, parallel)
        return results
    finally:
        if board is not None:  # the table stays as the batch's summary
            board.stop()
        settled = bool(results) and all(result.exit_code == 0 for result in results)
        pool.close(quick=batch.cancelled is not None, settled=settled)
