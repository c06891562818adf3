"""The environment opencode runs in, for tools that start it: isolated and offline."""

from __future__ import annotations

import json
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


def isolated_env(root: Path, *, installed: bool = True) -> dict[str, str]:
    """HOME and XDG directories under `root`, so opencode never touches a user's data.

    `installed`: opencode's configuration folder is marked as holding the packages opencode
    installs there (`@opencode-ai/plugin`, for the user's own plugins), as it is on a machine
    where opencode has run once. Otherwise every fresh HOME makes opencode fetch them from the
    npm registry in the background, which takes CPU and network, makes its first request in a
    directory slower (0.25 s against 0.11 s), and takes its first SIGTERM."""
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
    if installed:
        mark_installed(home / ".config" / "opencode")
    return env


def mark_installed(folder: Path) -> None:
    """Make opencode take its configuration `folder` as installed: a `node_modules` folder and
    a lock file naming `@opencode-ai/plugin` (opencode installs only when the folder lacks
    `node_modules`, or when its `package.json` names a package the lock file does not)."""
    (folder / "node_modules").mkdir(parents=True, exist_ok=True)
    lock = {"lockfileVersion": 3, "packages": {"": {"dependencies": {PLUGIN: "*"}}}}
    (folder / "package-lock.json").write_text(json.dumps(lock))


PLUGIN = "@opencode-ai/plugin"


def opencode_env(root: Path, *, installed: bool = True) -> dict[str, str]:
    """The environment to run opencode in, for a tool comparing itself with the runner: a HOME
    of its own under `root` (`installed`: see `isolated_env`), the offline flags, no password,
    and `rg` (this Python's) on PATH."""
    env = {**os.environ, **isolated_env(root, installed=installed), **OFFLINE_ENV}
    env.pop("OPENCODE_SERVER_PASSWORD", None)
    env["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), env.get("PATH", "")])
    return env
