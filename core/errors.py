"""The runner's error tree: one root, specific children; messages are for people."""

from __future__ import annotations

import json


class RunnerError(Exception):
    """Root of every error the runner raises on purpose."""


class PhaseFileError(RunnerError):
    """A phase file or a command-line flag is wrong (exit code 64)."""


class RefusedError(RunnerError):
    """The server cannot run the phase as its file asks: the phase is refused before anything
    runs (exit code 64)."""

    exit_code = 64


class PermissionsNotEnforcedError(RefusedError):
    """The server would not hold a session to the phase's permission policy."""


class ServerStartError(RunnerError):
    """The opencode server could not be started, reached or accepted."""


class StreamError(RunnerError):
    """The SSE stream failed in a way reconnecting cannot fix."""


class ServerUnreachableError(RunnerError):
    """A request could not reach the server (connection refused or reset)."""


class RequestTimeoutError(RunnerError):
    """A request to the server got no answer within its timeout."""


class UpstreamHTTPError(RunnerError):
    """The server answered with a non-2xx status."""

    def __init__(
        self,
        *,
        method: str,
        path: str,
        status: int,
        body: str,
        retry_after: float | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.body = body
        self.retry_after = retry_after
        super().__init__(f"{method} {path} -> HTTP {status}: {_summarise(body)}")

    @property
    def error_name(self) -> str | None:
        """The `name` of opencode's JSON error body (e.g. `NotFoundError`; 2.x calls it
        `_tag`), if any."""
        return _json_field(self.body, "name") or _json_field(self.body, "_tag")

    @property
    def unlistable_format(self) -> bool:
        """opencode 1.18.33 cannot list a page of messages holding a prompt sent with an output
        format (`output_schema`): it answers 400 "Expected OutputFormatJsonSchema ..."."""
        return self.status == 400 and "OutputFormat" in self.body


def _summarise(body: str, limit: int = 200) -> str:
    """One line of the body: opencode's `data.message` when present, else the text cut short."""
    message = _json_field(body, "message")
    text = message if message else " ".join(body.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_field(body: str, key: str) -> str | None:
    """`key` from a JSON object body, looking inside `data` and `error` too."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    for holder in (doc, doc.get("data"), doc.get("error")):
        if isinstance(holder, dict) and isinstance(holder.get(key), str):
            return holder[key]
    return None
