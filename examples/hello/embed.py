"""Embedding example: run the hello phase from Python on the in-process mock LLM.

.venv/bin/python examples/hello/embed.py
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from mock import MockLLM  # noqa: E402
from runner.api import start_phase  # noqa: E402
from runner.phase import load_phase  # noqa: E402


def main() -> int:
    """Start the phase, print each event's type as it happens, then the verdict."""
    script = json.loads((HERE / "mock-script.json").read_text())
    with MockLLM(script) as mock:
        spec = load_phase(HERE / "phase.yaml")
        handle = start_phase(
            spec,
            env={"MOCK_LLM_URL": mock.url},
            on_event=lambda message: print("event:", type(message).__name__),
        )
        result = handle.result(timeout=300)
    print(f"verdict: {result.verdict} ({result.reason}); transcript: {result.transcript}")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
