"""The embedding API: start phases from Python, watch their events, await or cancel them.

    handle = start_phase("phase.yaml", on_event=print)
    result = handle.result(timeout=600)          # PhaseResult

`run_phase(spec)` is `start_phase(spec).result()`. Several handles may run at once in one
process; `run_phases(specs, parallel=N)` runs them on one shared server and one event stream.
`on_event` is called on an observer actor's own thread, never on the stream's: a slow callback
delays only itself (it misses stream batches past its bound; records always reach it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from actors.process import Prespawned
from runner._mock import EmbeddedMock
from runner.executors.local import Batch, run_here
from runner.phase import PhaseSpec
from runner.servers.lease import Leases
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


def run_phases(
    phases: Sequence[PhaseSpec | str | Path],
    *,
    parallel: int = 1,
    executor: Any = "local",
    batch: Batch | None = None,
    prespawned: Mapping[Any, Prespawned] | None = None,
    mock: EmbeddedMock | None = None,
    leases: Leases | None = None,
    leased: Mapping[Any, Any] | None = None,
    **options: Any,
) -> list[PhaseResult]:
    """Run phases, `parallel` at a time; phases asking for the same server share one.
    `executor`: "local" (this process), "ray" (a one-node Ray here; `RayExecutor(address=...)`
    for a cluster), or any object with `run(specs, parallel, batch, options)`. `leases`: warm
    servers from the pool daemon (`Leases(PoolClient.find(), script)`), `leased` the first
    ones already taken (`runner.servers.lease.prelease`)."""
    specs = [spec_of(phase) for phase in phases]
    remote = _executor(executor)
    if not specs:
        return []
    if remote is not None:  # its nodes start their own mock LLM and servers
        return remote.run(specs, max(1, parallel), batch or Batch(), options)
    if mock is not None:  # started by the caller (the CLI, before its early servers)
        options["env"] = {**(options.get("env") or {}), **mock.env}  # start_phase starts none
        return run_here(specs, parallel, batch, prespawned, options, leases=leases, leased=leased)
    with EmbeddedMock(specs) as ours:  # a phase's `mock` (runner._mock); the caller's wins
        options["env"] = {**ours.env, **(options.get("env") or {})}
        return run_here(specs, parallel, batch, prespawned, options, leases=leases, leased=leased)


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
