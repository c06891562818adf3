"""One phase in this process: `start_phase` starts its supervisor on a thread of its own and
returns its `PhaseHandle` (events, result, cancel); `run_phase` waits for the result.
`runner.api` is the public face of both."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from actors.renderer import MODES
from runner._events import EventBuffer
from runner._logs import logger
from runner._mock import EmbeddedMock
from runner.phase import PhaseSpec, load_phase
from runner.servers.shared import SharedServer
from runner.supervisor.driver import RunOptions, Supervisor
from runner.supervisor.result import PhaseResult

# How long a caller waits for a cancelled phase to end: its verdict (within the supervisor's
# `VERDICT_AFTER_CANCEL`), then its abort, its actors and server stopped, its files written.
CANCEL_WAIT = 30.0


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


def spec_of(phase: PhaseSpec | str | Path) -> PhaseSpec:
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
    spec, env, events = spec_of(phase), dict(env or {}), EventBuffer()
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
            handle.result(timeout=CANCEL_WAIT)
        raise
