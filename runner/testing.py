"""A pytest plugin for people who test their own phases: `pytest -p runner.testing`.

(or `pytest_plugins = ["runner.testing"]` in a root `conftest.py`). Fixtures:

- `opencode_home`: the environment of an isolated opencode (HOME and XDG folders under the
  test's `tmp_path`), so a test never touches the user's opencode data.
- `mock_llm(script)`: a started scripted mock LLM (`mock/_script.py`: turns of text, reasoning
  and tool calls; faults such as `{"kind": "429", "attempt": [1, 2]}` by turn and attempt),
  stopped when the test ends. `.url`, `.journal` (every request it answered).
- `run_phase(phase, script=None, **options)`: runs a phase file (or a `PhaseSpec`) to its
  verdict through the runner's own API, with its transcript and result written under
  `tmp_path`, on the mock serving `script` when one is given (else on the phase's own `mock`),
  and returns a `PhaseRun`: the `PhaseResult`, the transcript parsed, and the mock.

    def test_survives_a_rate_limit(run_phase):
        script = {"turns": [{"text": "Hi.", "faults": [{"kind": "429", "attempt": [1]}]}]}
        run = run_phase("phase.yaml", script=script)
        assert run.result.verdict == "done"
        assert run.records("attempt_started")
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mock import MockLLM, opencode_provider_config
from mock.env import isolated_env
from runner.api import run_phases
from runner.phase import Overrides, PhaseSpec, load_phase
from runner.supervisor.result import PhaseResult

__all__ = ["PhaseRun"]


@dataclasses.dataclass(frozen=True, slots=True)
class PhaseRun:
    """One phase run by the `run_phase` fixture."""

    result: PhaseResult
    transcript: list[dict[str, Any]]
    mock: Any = None  # the MockLLM that served it, when the test gave a script

    def records(self, kind: str) -> list[dict[str, Any]]:
        """The transcript's `runner.<kind>` records (`attempt_started`, `resynced`, ...)."""
        return [line for line in self.transcript if line.get("type") == f"runner.{kind}"]

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The transcript's raw events of one type (`session.status`, ...)."""
        return [line for line in self.transcript if line.get("type") == kind]


def _on_the_mock(spec: PhaseSpec) -> PhaseSpec:
    """A phase that names no provider talks to the test's mock (as a phase with `mock` does)."""
    if spec.opencode_config is not None:
        return spec
    config = opencode_provider_config("{env:MOCK_LLM_URL}")
    return dataclasses.replace(spec, opencode_config=config, model=spec.model or config["model"])


@pytest.fixture
def opencode_home(tmp_path: Path) -> dict[str, str]:
    """HOME and XDG folders of an opencode of this test's own."""
    return isolated_env(tmp_path / "opencode")


@pytest.fixture
def mock_llm() -> Iterator[Callable[[Any], Any]]:
    """`mock_llm(script)`: a started mock LLM serving `script`; stopped after the test."""
    started: list[Any] = []

    def start(script: Any) -> Any:
        mock = MockLLM(script).start()
        started.append(mock)
        return mock

    yield start
    for mock in reversed(started):
        mock.stop()


@pytest.fixture
def run_phase(
    tmp_path: Path, opencode_home: dict[str, str], mock_llm: Callable[[Any], Any]
) -> Callable[..., PhaseRun]:
    """`run_phase(phase, script=None, **options)`: the phase's `PhaseRun`."""

    def run(phase: str | Path | PhaseSpec, script: Any = None, **options: Any) -> PhaseRun:
        outputs = Overrides(
            transcript=str(tmp_path / "runs" / "{name}.jsonl"),
            result=str(tmp_path / "runs" / "{name}.result.json"),
        )
        spec = phase if isinstance(phase, PhaseSpec) else load_phase(phase, overrides=outputs)
        env = {**opencode_home, **options.pop("env", {})}
        mock = None
        if script is not None:  # this script, not the phase's own `mock`
            mock = mock_llm(script)
            spec = _on_the_mock(dataclasses.replace(spec, mock=None))
            env["MOCK_LLM_URL"] = mock.url
        (result,) = run_phases([spec], env=env, **options)
        with open(result.transcript, encoding="utf-8") as handle:
            transcript = [json.loads(line) for line in handle if line.strip()]
        return PhaseRun(result=result, transcript=transcript, mock=mock)

    return run
