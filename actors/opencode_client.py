"""A small, strict client for the opencode server's HTTP API: it sends the requests its `Wire`
(`core.protocol`) builds, so it knows no route or body of its own.

Every call has a timeout (a request sent to a half-started server can hang forever), sends
Basic auth (user `opencode`), and turns failures into the runner's errors: non-2xx answers
become `UpstreamHTTPError` carrying status and body, refused or reset connections
`ServerUnreachableError`, and silence `RequestTimeoutError`. The password never appears in a
message, a repr or a log line.
"""

from __future__ import annotations

from typing import Any

import requests

from core import jsonfast
from core.errors import RequestTimeoutError, ServerUnreachableError, UpstreamHTTPError
from core.protocol import Request, Wire, split_model
from core.protocol.v1 import WireV1

__all__ = ["OpencodeClient", "split_model"]

USERNAME = "opencode"
DEFAULT_TIMEOUT = 10.0
MAX_PAGES = 1000  # of one paged answer: a server that pages forever is not followed forever


class OpencodeClient:
    """HTTP calls to one opencode server, scoped to one project directory."""

    def __init__(
        self,
        base_url: str,
        *,
        password: str | None,
        directory: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        wire: Wire | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.wire: Wire = wire if wire is not None else WireV1()  # what it sends
        self.directory = directory
        self.timeout = timeout
        if session is None:
            session = requests.Session()
            # Loopback only: no proxy from the environment, no .netrc (no lookups per request).
            session.trust_env = False
        self._http = session
        if password is not None:
            self._http.auth = (USERNAME, password)

    def __repr__(self) -> str:
        return f"OpencodeClient({self.base_url!r}, directory={self.directory!r})"

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    # -- server -------------------------------------------------------------------------------

    def health(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The server's health: `{"healthy": true, "version": "..."}`."""
        return self.send(self.wire.health(), timeout=timeout)

    def version(self) -> str:
        """The server's version string, from the health route."""
        return str(self.health().get("version", ""))

    def dispose_instance(self) -> bool:
        """Drop the directory's instance (its event stream closes)."""
        return bool(self.send(self.wire.dispose_instance()))

    def tool_ids(self) -> list[str]:
        """Every tool the server offers (MCP and plugins' too); a line's fixed set when it
        lists none (no request then: it would hold up the start of a cold server)."""
        if self.wire.fixed_tools is not None:
            return list(self.wire.fixed_tools)
        return [str(tool) for tool in self.send(self.wire.tool_ids()) or ()]

    def agents(self) -> list[dict[str, Any]]:
        """The agents, the default one first, each with its permission rules."""
        return list(self.send(self.wire.agents()) or ())

    # -- sessions -----------------------------------------------------------------------------

    def create_session(
        self,
        *,
        title: str,
        agent: str | None = None,
        model: str | None = None,
        permission: list[dict[str, str]] | None = None,
        parent_id: str | None = None,
    ) -> dict[str, Any]:
        """A new session (`core.protocol.Wire.create_session`)."""
        request = self.wire.create_session(
            title=title,
            agent=agent,
            model=model,
            permission=permission,
            parent_id=parent_id,
            directory=self.directory,
        )
        return self.send(request)

    def get_session(self, session_id: str) -> dict[str, Any]:
        """One session's info."""
        return self.send(self.wire.get_session(session_id))

    def prompt_async(self, session_id: str, text: str, **options: Any) -> None:
        """A prompt answered at once (204); progress arrives on the stream."""
        self.send(self.wire.prompt_async(session_id, text, **options))

    def prompt(self, session_id: str, text: str, *, timeout: float, **options: Any) -> Any:
        """A prompt answered when its turn ends (LLM errors still 200)."""
        return self.send(self.wire.prompt(session_id, text, **options), timeout=timeout)

    def messages(self, session_id: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """`[{info, parts}]`, oldest first (`limit` = newest N)."""
        return self.send(self.wire.messages(session_id, limit=limit))

    def status(self) -> dict[str, dict[str, Any]]:
        """Busy or retrying sessions by id (idle ones are absent)."""
        return self.send(self.wire.status())

    def abort(self, session_id: str) -> bool:
        """Stop a session's turn: False when the server said nothing was running (2.x)."""
        return bool(self.send(self.wire.abort(session_id)))

    # -- permissions and questions ------------------------------------------------------------

    def reply_permission(
        self,
        request_id: str,
        reply: str,
        *,
        session_id: str,
        message: str | None = None,
    ) -> bool:
        """Answer a permission request; on a server without that route, its older one."""
        request = self.wire.reply_permission(
            request_id, reply, session_id=session_id, message=message
        )
        try:
            return bool(self.send(request))
        except UpstreamHTTPError as exc:
            if not _route_missing(exc):
                raise
        return bool(
            self.send(self.wire.reply_permission_again(request_id, reply, session_id=session_id))
        )

    def pending_permissions(self, session_id: str) -> list[dict[str, Any]]:
        """The permission requests waiting for an answer, those of `session_id` at least
        (`permission.asked` properties)."""
        return [ask for ask in self.send(self.wire.pending_permissions(session_id)) or () if ask]

    def reject_question(self, request_id: str, *, session_id: str | None = None) -> bool:
        """Dismiss a question the agent asked (in session `session_id`)."""
        return bool(self.send(self.wire.reject_question(request_id, session_id=session_id)))

    # -- plumbing -----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """Absolute URL of a server path."""
        return self.base_url + path

    def scope_params(self) -> dict[str, str]:
        """Query parameters that scope a route to this client's directory."""
        return {"directory": self.directory} if self.directory else {}

    @property
    def http(self) -> requests.Session:
        """The underlying authenticated `requests.Session` (for the event stream)."""
        return self._http

    def send(self, request: Request, *, timeout: float | None = None) -> Any:
        """Send what the wire built; the decoded JSON answer (None for an empty one), read into
        the runner's model by the request's `read`, every page of it when it is paged."""
        answer = self._send_one(request, timeout)
        if request.follow is not None:
            pages = [answer]
            while len(pages) < MAX_PAGES and (after := request.follow(pages[-1])) is not None:
                pages.append(self._send_one(after, timeout))
            answer = pages
        return answer if request.read is None else request.read(answer)

    def _send_one(self, request: Request, timeout: float | None) -> Any:
        method, path = request.method, request.path
        query = {**(self.scope_params() if request.scoped else {}), **request.params}
        try:
            response = self._http.request(
                method,
                self.url(path),
                json=request.body,
                params=query or None,
                timeout=timeout if timeout is not None else self.timeout,
            )
        except requests.Timeout as exc:
            raise RequestTimeoutError(f"{method} {path}: no answer from {self.base_url}") from exc
        except requests.ConnectionError as exc:
            raise ServerUnreachableError(f"{method} {path}: cannot reach {self.base_url}") from exc
        except requests.RequestException as exc:  # a response cut short, a malformed one
            raise ServerUnreachableError(
                f"{method} {path}: broken answer from {self.base_url} ({type(exc).__name__})"
            ) from exc
        return _decode(method, path, response)


def _decode(method: str, path: str, response: requests.Response) -> Any:
    if not response.ok:
        raise UpstreamHTTPError(
            method=method,
            path=path,
            status=response.status_code,
            body=response.text,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    if response.status_code == 204 or not response.content:
        return None
    try:  # from the bytes: a large snapshot is not also kept decoded as one more string
        return jsonfast.loads(response.content)
    except ValueError as exc:
        raise UpstreamHTTPError(
            method=method, path=path, status=response.status_code, body=response.text[:500]
        ) from exc


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _route_missing(exc: UpstreamHTTPError) -> bool:
    """True when the server lacks the route (not when it lacks the permission request)."""
    return exc.status in (404, 405) and exc.error_name != "PermissionNotFoundError"
