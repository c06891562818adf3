"""The embedded default LLM: phases with `mock: SCRIPT` run against the scripted mock.

The CLI (and `run_phases`) start one `MockLLM` in this process, on a free loopback port, before
any server; its URL goes to every server as `MOCK_LLM_URL`, which the provider config the phase
file gets by default reads (`{env:MOCK_LLM_URL}`, see `runner.phase`). It stops when the run
ends. One mock serves one run: phases with different scripts are refused before anything
starts (run them one command each).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import PhaseFileError


class EmbeddedMock:
    """The run's mock LLM, if a phase asks for one (a context manager)."""

    def __init__(self, specs: Sequence[Any]) -> None:
        scripts = {spec.mock for spec in specs if getattr(spec, "mock", None) is not None}
        if len(scripts) > 1:
            shown = ", ".join(sorted(str(script) for script in scripts))
            raise PhaseFileError(f"mock: one run serves one mock script, got {shown}")
        self.script: Path | None = next(iter(scripts), None)
        self._mock: Any = None

    @property
    def env(self) -> dict[str, str]:
        """What the servers' environment needs (nothing without a mock)."""
        return {} if self._mock is None else {"MOCK_LLM_URL": self._mock.url}

    def __enter__(self) -> EmbeddedMock:
        if self.script is not None:
            from mock import MockLLM  # the HTTP server: only when a phase asks for it

            self._mock = MockLLM(self.script).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        mock, self._mock = self._mock, None
        if mock is None:
            return
        from runner._logs import logger  # loguru: loaded by the run long before this

        started = time.monotonic()
        mock.stop()
        logger.info("mock LLM ({}) stopped in {:.2f}s", self.script, time.monotonic() - started)
