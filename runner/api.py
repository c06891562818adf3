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
import io
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from actors._process import Prespawned
from actors.renderer import MODES
from runner._events import EventBuffer
from runner._logs import logger
from runner._mock import EmbeddedMock
from runner.batch import board_for
from runner.phase import PhaseSpec, load_phase
from runner.phase.derive import server_key, server_spec
from runner.result import PhaseResult
from runner.shared_server import SharedServer
from runner.supervisor import RunOptions, Supervisor

CANCEL_GRACE = 30.0  # seconds a cancelled phase gets to abort, stop and write its files


class _Discard(io.TextIOBase):
    """Where output goes when the embedder did not ask for any."""

    def write(self, text: str) -> int:
        return len(text)


class PhaseHandle:
    """A running phase: its events, its result, and a way to cancel it."""

    def __init__(
        self, supervisor: Supervisor, events: EventBuffer, cleanup: contextlib.ExitStack
    ) -> None:
        self._supervisor = supervisor
        self._events = events
        self._cleanup = cleanup  # the phase's own mock LLM, if any: stopped when the phase ends
        self._done = threading.Event()
        self._result: PhaseResult | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"phase-{supervisor.spec.name}", daemon=True
        )
        self._thread.start()

    @property
    def name(self) -> str:
        """The phase's name."""
        return self._supervisor.spec.name

    @property
    def done(self) -> bool:
        """True once the result is known (files written, processes gone)."""
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> PhaseResult:
        """Wait for the verdict; `TimeoutError` if it does not come in time."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"phase {self.name} has no result after {timeout}s")
        assert self._result is not None
        return self._result

    def cancel(self, reason: str = "cancelled by the embedder", exit_code: int = 130) -> None:
        """Abort the session and end the phase with verdict `interrupted`."""
        self._supervisor.cancel(reason, exit_code)

    def events(self, timeout: float | None = None) -> Iterator[Any]:
        """The messages the phase publishes from now on, in order, ending with the final
        `VerdictReached`. Nothing is kept before the first call; past the buffer's bound
        (bytes) new messages are dropped while nobody reads (`dropped_events` counts them).
        `TimeoutError` if `timeout` seconds pass without a message."""
        self._events.open()
        return self._events.read(timeout)

    @property
    def dropped_events(self) -> int:
        """Messages `events()` will not yield because its buffer was full."""
        return self._events.dropped

    def _run(self) -> None:
        try:
            self._result = self._supervisor.run()
        except Exception as exc:  # run() reports the phase's failures itself: this is a bug
            logger.exception("phase {} failed unexpectedly", self.name)
            spec = self._supervisor.spec
            self._result = PhaseResult(
                phase=spec.name,
                verdict="failed",
                reason=f"internal error: {exc}",
                exit_code=1,
                transcript=str(spec.output.transcript),
                result_path=str(spec.output.result),
            )
        finally:
            self._stop_mock()
            self._events.end()
            self._done.set()

    def _stop_mock(self) -> None:
        try:
            self._cleanup.close()
        except Exception:  # the verdict stands; a mock that would not stop is only logged
            logger.exception("phase {}: the mock LLM did not stop cleanly", self.name)


def _spec_of(phase: PhaseSpec | str | Path) -> PhaseSpec:
    return phase if isinstance(phase, PhaseSpec) else load_phase(phase)


def start_phase(
    phase: PhaseSpec | str | Path,
    *,
    on_event: Callable[[Any], None] | None = None,
    mode: str = "plain",
    out: TextIO | None = None,
    verbose: bool = False,
    env: Mapping[str, str] | None = None,
    prefix: str | None = None,
    server: SharedServer | None = None,
    board: Any = None,
) -> PhaseHandle:
    """Start a phase in the background; `PhaseFileError` if the file is wrong."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    spec, env, events = _spec_of(phase), dict(env or {}), EventBuffer()
    with contextlib.ExitStack() as cleanup:  # the handle takes it over, or it stops the mock
        if spec.mock is not None and "MOCK_LLM_URL" not in env:  # no caller started one
            env.update(cleanup.enter_context(EmbeddedMock([spec])).env)
        options = RunOptions(
            mode=mode,
            out=out if out is not None else _Discard(),
            verbose=verbose,
            prefix=prefix,
            env=env,
            on_event=on_event,
            events=events.put,
            board=board,
        )
        return PhaseHandle(Supervisor(spec, options, server=server), events, cleanup.pop_all())


def run_phase(phase: PhaseSpec | str | Path, **options: Any) -> PhaseResult:
    """Run a phase to its verdict; Ctrl-C (or any exception) while waiting cancels it first."""
    handle = start_phase(phase, **options)
    try:
        return handle.result()
    except BaseException:
        handle.cancel("interrupted while waiting for the result")
        with contextlib.suppress(TimeoutError):
            handle.result(timeout=CANCEL_GRACE)
        raise


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
            reason, code = self.cancelled, self._exit_code
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
                self._exit_code, self.cancelled = exit_code, reason
            handles = list(self.handles)
        for handle in handles:
            handle.cancel(reason, exit_code)


def _servers(
    specs: list[PhaseSpec], env: Mapping[str, str], prespawned: Mapping[Any, Prespawned]
) -> dict[Any, SharedServer]:
    """One server per distinct `server_key`: phases share a server when they ask for the same
    (adopting the one the caller already started for that key, if any)."""
    servers: dict[tuple[Any, ...], SharedServer] = {}
    for spec in specs:
        key = server_key(spec)
        if key not in servers:
            servers[key] = SharedServer(server_spec(spec, env), prespawned.get(key))
    return servers


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
    specs = [_spec_of(phase) for phase in phases]
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
        from runner.ray_driver import RayExecutor  # (imports no Ray until it runs)

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
    servers = _servers(specs, options.get("env") or {}, prespawned or {})
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
