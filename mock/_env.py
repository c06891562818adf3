"""The environment opencode runs in, for tools that start it: isolated and offline."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

# Nothing leaves the machine: no update checks, model catalogue fetches, LSP downloads or shares
# (the runner gives its own server the same flags).
OFFLINE_ENV = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_SHARE": "1",
}


def isolated_env(root: Path) -> dict[str, str]:
    """HOME and XDG directories under `root`, so opencode never touches a user's data."""
    home = root / "home"
    env = {
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
    }
    for path in env.values():
        os.makedirs(path, exist_ok=True)
    return env


def opencode_env(root: Path) -> dict[str, str]:
    """The environment to run opencode in, for a tool comparing itself with the runner: a HOME
    of its own under `root`, the offline flags, no password, and `rg` (this Python's) on PATH."""
    env = {**os.environ, **isolated_env(root), **OFFLINE_ENV}
    env.pop("OPENCODE_SERVER_PASSWORD", None)
    env["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), env.get("PATH", "")])
    return env
