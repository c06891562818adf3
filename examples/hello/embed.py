"""Embedding example: run the hello phase from Python. Its `mock:` key gives it the scripted
mock LLM, started in this process with the phase and stopped when it ends.

.venv/bin/python examples/hello/embed.py
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from runner.api import start_phase  # noqa: E402


def main() -> int:
    """Start the phase, print each event's type as it happens, then the verdict."""
    handle = start_phase(
        HERE / "phase.yaml", on_event=lambda message: print("event:", type(message).__name__)
    )
    result = handle.result(timeout=300)
    print(f"verdict: {result.verdict} ({result.reason}); transcript: {result.transcript}")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
