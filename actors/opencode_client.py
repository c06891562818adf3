"""A small, strict client for the opencode server's HTTP API.

Every call has a timeout (a request sent to a half-started server can hang forever), sends
Basic auth (user `opencode`), and turns failures into the runner's errors: non-2xx answers
become `UpstreamHTTPError` carrying status and body, refused or reset connections
`ServerUnreachableError`, and silence `RequestTimeoutError`. The password never appears in a
message, a repr or a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from core import jsonfast
from core.errors import RequestTimeoutError, ServerUnreachableError, UpstreamHTTPError

USERNAME = "opencode"
DEFAULT_TIMEOUT = 10.0


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
    ) -> None:
        self.base_url = base_url.rstrip("/")
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
        """`GET /global/health`: `{"healthy": true, "version": "..."}`."""
        return self._call("GET", "/global/health", scoped=False, timeout=timeout)

    def version(self) -> str:
        """The server's version string, from the health route."""
        return str(self.health().get("version", ""))

    def dispose_instance(self) -> bool:
        """`POST /instance/dispose`: drop the directory's instance (its `/event` stream closes)."""
        return bool(self._call("POST", "/instance/dispose"))

    def tool_ids(self) -> list[str]:
        """`GET /experimental/tool/ids`: every tool the server offers (MCP and plugins' too)."""
        return [str(tool) for tool in self._call("GET", "/experimental/tool/ids") or ()]

    def agents(self) -> list[dict[str, Any]]:
        """`GET /agent`: the agents, the default one first, each with its permission rules."""
        return list(self._call("GET", "/agent") or ())

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
        """`POST /session`; a title is always given so opencode makes no title request."""
        body: dict[str, Any] = {"title": title}
        if agent:
            body["agent"] = agent
        if model:
            provider, model_id = split_model(model)
            body["model"] = {"providerID": provider, "id": model_id}
        if permission:
            body["permission"] = permission
        if parent_id:
            body["parentID"] = parent_id
        return self._call("POST", "/session", json=body)

    def get_session(self, session_id: str) -> dict[str, Any]:
        """`GET /session/{id}`."""
        return self._call("GET", f"/session/{_seg(session_id)}")

    def prompt_async(self, session_id: str, text: str, **options: Any) -> None:
        """`POST /session/{id}/prompt_async`: 204 at once; progress arrives on the stream."""
        self._call("POST", f"/session/{_seg(session_id)}/prompt_async", json=_prompt(text, options))

    def prompt(self, session_id: str, text: str, *, timeout: float, **options: Any) -> Any:
        """`POST /session/{id}/message`: blocks until the turn ends (LLM errors still 200)."""
        path = f"/session/{_seg(session_id)}/message"
        return self._call("POST", path, json=_prompt(text, options), timeout=timeout)

    def messages(self, session_id: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """`GET /session/{id}/message`: `[{info, parts}]`, oldest first (`limit` = newest N)."""
        params = {"limit": str(limit)} if limit is not None else None
        return self._call("GET", f"/session/{_seg(session_id)}/message", params=params)

    def status(self) -> dict[str, dict[str, Any]]:
        """`GET /session/status`: busy or retrying sessions by id (idle ones are absent)."""
        return self._call("GET", "/session/status")

    def abort(self, session_id: str) -> bool:
        """`POST /session/{id}/abort` (true even when already idle)."""
        return bool(self._call("POST", f"/session/{_seg(session_id)}/abort"))

    # -- permissions and questions ------------------------------------------------------------

    def reply_permission(
        self,
        request_id: str,
        reply: str,
        *,
        session_id: str,
        message: str | None = None,
    ) -> bool:
        """Answer a permission request; falls back to the old per-session route if needed."""
        body: dict[str, Any] = {"reply": reply}
        if message is not None:
            body["message"] = message
        try:
            return bool(self._call("POST", f"/permission/{_seg(request_id)}/reply", json=body))
        except UpstreamHTTPError as exc:
            if not _route_missing(exc):
                raise
        path = f"/session/{_seg(session_id)}/permissions/{_seg(request_id)}"
        return bool(self._call("POST", path, json={"response": reply}))

    def reject_question(self, request_id: str) -> bool:
        """`POST /question/{id}/reject`: dismiss a question the agent asked."""
        return bool(self._call("POST", f"/question/{_seg(request_id)}/reject"))

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

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        scoped: bool = True,
        timeout: float | None = None,
    ) -> Any:
        query = {**(self.scope_params() if scoped else {}), **(params or {})}
        try:
            response = self._http.request(
                method,
                self.url(path),
                json=json,
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


def split_model(model: str) -> tuple[str, str]:
    """`provider/model` into its two halves (the model id may itself contain slashes)."""
    provider, sep, model_id = model.partition("/")
    if not sep or not provider or not model_id:
        raise ValueError(f"model must look like provider/model, got {model!r}")
    return provider, model_id


def _prompt(text: str, options: Mapping[str, Any]) -> dict[str, Any]:
    part = {"type": "text", "text": text}
    if options.get("partID") is not None:
        part["id"] = options["partID"]
    body: dict[str, Any] = {"parts": [part]}
    for key in ("agent", "system", "variant", "tools", "messageID", "format"):
        if options.get(key) is not None:
            body[key] = options[key]
    if options.get("model"):
        provider, model_id = split_model(options["model"])
        body["model"] = {"providerID": provider, "modelID": model_id}
    return body


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


def _seg(value: str) -> str:
    return quote(value, safe="")
