"""The server actor's HTTP chores: the health probe while it starts, the abort sweep at stop."""

from __future__ import annotations

import threading
from collections.abc import Callable

from actors.logs import logger
from actors.opencode_client import OpencodeClient
from core.errors import RunnerError, UpstreamHTTPError
from core.protocol import WireV2

ABORT_TIMEOUT = 2.0


def probe(
    url: str,
    password: str | None,
    quit_: threading.Event,
    clock: Callable[[], float],
    deadline: float,
) -> tuple[str, str | None]:
    """Poll the health route until it answers, the deadline passes or `quit_` is set:
    `(version, None)` when healthy, `("", problem)` otherwise (a 401 gives up at once). A web
    page where 1.x's `/global/health` answers JSON, or a 503 that says to retry, is opencode 2.x:
    its `/api/info` is asked from then on."""
    client = OpencodeClient(url, password=password)
    try:
        while not quit_.is_set():
            try:
                return str(client.health(timeout=1.0).get("version", "")), None
            except UpstreamHTTPError as exc:
                if exc.status == 401:
                    return "", _refused(url, password)
                if _speaks_v2(exc) and not isinstance(client.wire, WireV2):
                    client.wire = WireV2()
                    continue
                if clock() >= deadline:
                    return "", f"opencode at {url} is not healthy: {exc}"
            except RunnerError as exc:
                if clock() >= deadline:
                    return "", f"opencode at {url} is not healthy: {exc}"
            quit_.wait(0.1)
        return "", "stopped"
    finally:
        client.close()


def _speaks_v2(exc: UpstreamHTTPError) -> bool:
    """A web page for 1.x's health route, or 2.x's early 503 (with its `/api/info` body)."""
    return exc.status == 200 or (exc.status == 503 and '"pid"' in (exc.body or ""))


def _refused(url: str, password: str | None) -> str:
    if password is None:
        return f"opencode at {url} asks for a password: set OPENCODE_SERVER_PASSWORD (HTTP 401)"
    return f"opencode at {url} rejected the password in OPENCODE_SERVER_PASSWORD (HTTP 401)"


def abort_busy_sessions(url: str, password: str | None) -> None:
    """Abort every busy session (best effort: SIGTERM gives opencode no drain)."""
    client = OpencodeClient(url, password=password, timeout=ABORT_TIMEOUT)
    try:
        status = client.status()
        for session_id in status if isinstance(status, dict) else ():
            client.abort(session_id)
    except Exception as exc:  # the process group is stopped regardless
        logger.debug("could not abort busy sessions before stopping: {}", exc)
    finally:
        client.close()
