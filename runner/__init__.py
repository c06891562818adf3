"""The runner: CLI, embedding API and the supervisor that wires the actors.

Importing the package costs nothing: `python -m runner` starts opencode before it imports the
heavy parts (pykka, requests, loguru), so the server boots while Python loads them.

The runner's other top-level packages keep the design's short names (`actors`, `messages`,
`core`, `mock`); if another distribution in the same environment owns one of those names,
importing `runner` fails at once with one line naming it and the fix, instead of failing
later in some unrelated import.
"""

import importlib.util
import os

SIBLINGS = ("actors", "messages", "core", "mock")


def _check_siblings() -> None:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in SIBLINGS:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if origin is None or os.path.dirname(os.path.dirname(os.path.abspath(origin))) != here:
            found = "nothing" if spec is None else (origin or "a namespace package")
            raise ImportError(
                f"runner: the module {name!r} resolves to {found}, not to runner's own "
                f"(beside {here}); install runner in a virtualenv of its own "
                "(python -m venv, or pipx)"
            )


_check_siblings()
