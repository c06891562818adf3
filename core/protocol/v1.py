"""opencode 1.x (1.14.48 to 1.18.33): the routes and bodies of `Wire`, as measured (docs/
opencode-versions.md, `core.opencode_versions`).

A title is always given to a new session, so opencode makes no title request of the model.
Prompts carry the model and agent in each request; structured output rides on `format`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from typing import Any

from core.opencode_versions import GLOBAL_EVENTS, Capabilities
from core.protocol.wire import EventDecoder, Request, segment, split_model

__all__ = ["WireV1", "unwrap"]

# What a prompt may carry besides its text, passed through as given.
PROMPT_OPTIONS = ("agent", "system", "variant", "tools", "messageID", "format")


class WireV1:
    """The requests of opencode 1.x."""

    fixed_tools = None  # `GET /experimental/tool/ids` lists them, MCP and plugins' too

    def __init__(self, capabilities: Capabilities | None = None) -> None:
        self.capabilities = capabilities

    def health(self) -> Request:
        return Request("GET", "/global/health", "/global/health", scoped=False)

    def dispose_instance(self) -> Request:
        return Request("POST", "/instance/dispose", "/instance/dispose")

    def tool_ids(self) -> Request:
        return Request("GET", "/experimental/tool/ids", "/experimental/tool/ids")

    def agents(self) -> Request:
        return Request("GET", "/agent", "/agent")

    def create_session(
        self,
        *,
        title: str,
        agent: str | None = None,
        model: str | None = None,
        permission: list[dict[str, str]] | None = None,
        parent_id: str | None = None,
        directory: str | None = None,  # noqa: ARG002 (1.x scopes every request by its query)
    ) -> Request:
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
        return Request("POST", "/session", "/session", body=body)

    def get_session(self, session_id: str) -> Request:
        return Request("GET", "/session/{sessionID}", f"/session/{segment(session_id)}")

    def prompt_async(self, session_id: str, text: str, **options: Any) -> Request:
        path = f"/session/{segment(session_id)}/prompt_async"
        return Request(
            "POST", "/session/{sessionID}/prompt_async", path, body=_prompt(text, options)
        )

    def prompt(self, session_id: str, text: str, **options: Any) -> Request:
        path = f"/session/{segment(session_id)}/message"
        return Request("POST", "/session/{sessionID}/message", path, body=_prompt(text, options))

    def messages(self, session_id: str, *, limit: int | None = None) -> Request:
        params = {"limit": str(limit)} if limit is not None else {}
        path = f"/session/{segment(session_id)}/message"
        return Request("GET", "/session/{sessionID}/message", path, params=params)

    def status(self) -> Request:
        return Request("GET", "/session/status", "/session/status")

    def abort(self, session_id: str) -> Request:
        """1.x answers `true` even when the session is idle, and then idles again: an abort
        always waits for that idle."""
        path = f"/session/{segment(session_id)}/abort"
        return Request("POST", "/session/{sessionID}/abort", path, read=lambda _: True)

    def reply_permission(
        self,
        request_id: str,
        reply: str,
        *,
        session_id: str,  # noqa: ARG002 (1.x answers by the request's id alone)
        message: str | None = None,
    ) -> Request:
        body: dict[str, Any] = {"reply": reply}
        if message is not None:
            body["message"] = message
        path = f"/permission/{segment(request_id)}/reply"
        return Request("POST", "/permission/{requestID}/reply", path, body=body)

    def reply_permission_again(self, request_id: str, reply: str, *, session_id: str) -> Request:
        route = "/session/{sessionID}/permissions/{permissionID}"
        path = f"/session/{segment(session_id)}/permissions/{segment(request_id)}"
        return Request("POST", route, path, body={"response": reply})

    def pending_permissions(self, session_id: str) -> Request:  # noqa: ARG002 (all of them)
        return Request("GET", "/permission", "/permission")

    def reject_question(
        self,
        request_id: str,
        *,
        session_id: str | None = None,  # noqa: ARG002 (1.x rejects by the request's id alone)
    ) -> Request:
        path = f"/question/{segment(request_id)}/reject"
        return Request("POST", "/question/{requestID}/reject", path)

    def events(self) -> Request:
        route = self.capabilities.event_route if self.capabilities else "/event"
        return Request("GET", route, route, scoped=route == "/event")

    def event_decoder(self, directory: str | None) -> EventDecoder | None:
        """`/event` is the model itself; 1.14's `/global/event` is unwrapped to it."""
        if self.events().route != GLOBAL_EVENTS:
            return None
        names = {directory, os.path.realpath(directory)} if directory else set()
        return partial(unwrap, directories=frozenset(names))


def unwrap(wrapper: dict[str, Any], directories: frozenset[str]) -> tuple[dict[str, Any], ...]:
    """A `/global/event` wrapper's event as `/event` would have sent it: the payload, when it is
    of one of `directories` (the client's, as given and with symlinks resolved: opencode names
    the resolved one) or of none (`server.connected`); else nothing. The route also repeats each
    change as a `{"type": "sync", "syncEvent": ...}` payload, which `/event` does not send."""
    payload = wrapper.get("payload")
    where = wrapper.get("directory")
    if not isinstance(payload, dict) or (where is not None and where not in directories):
        return ()
    return () if payload.get("type") == "sync" else (payload,)


def _prompt(text: str, options: Mapping[str, Any]) -> dict[str, Any]:
    part = {"type": "text", "text": text}
    if options.get("partID") is not None:
        part["id"] = options["partID"]
    body: dict[str, Any] = {"parts": [part]}
    for key in PROMPT_OPTIONS:
        if options.get(key) is not None:
            body[key] = options[key]
    if options.get("model"):
        provider, model_id = split_model(options["model"])
        body["model"] = {"providerID": provider, "modelID": model_id}
    return body
