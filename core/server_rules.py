"""Pure rules about the opencode server process: its startup line, versions, log tails."""

from __future__ import annotations

import re

from core.errors import ServerStartError
from core.opencode_versions import MIN_VERSION, PINNED, TESTED, version_tuple

# 1.x: `opencode server listening on URL`; 2.x: `server listening on URL`.
_LISTENING = re.compile(r"(?:^|opencode )server listening on (http://127\.0\.0\.1:(\d+))\s*$")


def parse_listening_line(line: str) -> tuple[str, int] | None:
    """`(url, port)` from opencode's `... listening on http://127.0.0.1:PORT` line, else None."""
    match = _LISTENING.search(line.strip())
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def parse_version(text: str) -> tuple[int, int, int]:
    """`1.18.33` (optionally with a `v` and a suffix) as a comparable tuple."""
    version = version_tuple(text)
    if version is None:
        raise ServerStartError(f"opencode reported an unreadable version {text!r}")
    return version


def check_version(text: str, *, binary: str, minimum: tuple[int, int, int] = MIN_VERSION) -> str:
    """Return the version if it is supported; raise a one-line `ServerStartError` if not."""
    if parse_version(text) < minimum:
        wanted = ".".join(str(part) for part in minimum)
        raise ServerStartError(
            f"{binary}: opencode {text.strip()} is too old; the runner supports {wanted} and newer"
            f" (tested: {', '.join(TESTED)}; `make setup` installs {PINNED})"
        )
    return text.strip()


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
# Seen when two servers create the same fresh database at once: a lock, or a migration query
# that fails because the other server ran it first. `ServeError` (its whole message): the port the
# runner chose was taken between its probe and opencode's bind; a new start gets a new port.
_TRANSIENT = ("database is locked", "Failed query:", "ServeError")


def tail_lines(text: str, count: int) -> tuple[str, ...]:
    """The last `count` non-blank lines of a log text, without colour codes."""
    lines = [_ANSI.sub("", line) for line in text.splitlines()]
    lines = [line for line in lines if line.strip()]
    return tuple(lines[-count:]) if count > 0 else ()


def is_transient_start_failure(log_tail: tuple[str, ...]) -> bool:
    """True when a server that exited before it was ready may start if tried again."""
    return any(marker in line for line in log_tail for marker in _TRANSIENT)


# 1.15 and later log the first; 1.14.48 logs only the query that failed ("Caused by: table
# `project` already exists", or "SQLiteError: table `project` already exists").
_MIGRATION = re.compile(r"failed to run data migrations|table `\w+` already exists")


def migration_failure(log_tail: tuple[str, ...], data_home: str) -> str | None:
    """The one-line cause and remedy when opencode could not migrate its database (a data
    folder last written by a newer opencode: every request then fails with HTTP 500)."""
    if not any(_MIGRATION.search(line) for line in log_tail):
        return None
    return (
        f"opencode could not migrate its database in {data_home}/opencode (a newer opencode"
        " wrote it): run with --isolate (server.isolate: true) for a fresh data folder, or use"
        " that newer opencode"
    )
