"""The interface of the protocol seam (`core.protocol`): `Wire`, and the `Request` it builds.

The runner's model of what a server says is opencode 1.x's `/event` and answers, as
`../shared/opencode/PROTOCOL.md` measured them (events `{type, properties}`, snapshots
`[{info, parts}]`, statuses by session id): the tracker, the termination policy, the transcript
and every view read that model and nothing else. A `Wire` of another line translates into it:
each `Request` may carry how to `read` its answer, and `event_decoder` turns each object of the
stream into events of the model (none, one or several).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

__all__ = ["EventDecoder", "Request", "Wire", "segment", "split_model"]

# One object of a line's event stream -> the events of the runner's model it stands for.
EventDecoder = Callable[[dict[str, Any]], tuple[dict[str, Any], ...]]


def _no_params() -> Mapping[str, str]:
    return {}


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request to the server, before it is sent."""

    method: str
    route: str  # the OpenAPI path template, e.g. "/session/{sessionID}/message"
    path: str  # the route with its parameters filled in (each quoted as one segment)
    params: Mapping[str, str] = field(default_factory=_no_params)
    body: Any = None  # JSON, or None for no body
    scoped: bool = True  # carries the client's directory (`?directory=`)
    read: Callable[[Any], Any] | None = None  # the decoded answer into the model; None: as is
    # A paged answer: the request of the page after this decoded one (None: it was the last).
    # With it, `read` is given the list of every page's decoded answer, in order.
    follow: Callable[[Any], Request | None] | None = None


class Wire(Protocol):
    """Every request the runner makes of one opencode line."""

    # The tools of a line that cannot list them (2.x: a fixed set); None: ask `tool_ids`.
    fixed_tools: tuple[str, ...] | None

    def health(self) -> Request:
        """The server's health and version."""

    def dispose_instance(self) -> Request:
        """Drop the directory's instance (its event stream closes)."""

    def tool_ids(self) -> Request:
        """Every tool the server offers (MCP and plugins' too)."""

    def agents(self) -> Request:
        """The agents, each with its permission rules."""

    def create_session(
        self,
        *,
        title: str,
        agent: str | None = None,
        model: str | None = None,
        permission: list[dict[str, str]] | None = None,
        parent_id: str | None = None,
        directory: str | None = None,
    ) -> Request:
        """A new session with the phase's rules, in `directory`."""

    def get_session(self, session_id: str) -> Request:
        """One session's info."""

    def prompt_async(self, session_id: str, text: str, **options: Any) -> Request:
        """A prompt answered at once; the turn arrives on the event stream."""

    def prompt(self, session_id: str, text: str, **options: Any) -> Request:
        """A prompt answered when its turn ends."""

    def messages(self, session_id: str, *, limit: int | None = None) -> Request:
        """A session's messages with their parts, oldest first (`limit`: the newest N)."""

    def status(self) -> Request:
        """The busy or retrying sessions."""

    def abort(self, session_id: str) -> Request:
        """Stop a session's turn; its answer reads as True unless the server said that nothing
        was running (then no event follows)."""

    def reply_permission(
        self, request_id: str, reply: str, *, session_id: str, message: str | None = None
    ) -> Request:
        """Answer a permission request."""

    def reply_permission_again(self, request_id: str, reply: str, *, session_id: str) -> Request:
        """The same answer on the route of servers that lack `reply_permission`'s."""

    def pending_permissions(self, session_id: str) -> Request:
        """The permission requests waiting for an answer (those of `session_id` at least), each
        as a `permission.asked` event's properties (a resync finds those a break lost)."""

    def reject_question(self, request_id: str, *, session_id: str | None = None) -> Request:
        """Dismiss a question the agent asked (in session `session_id`)."""

    def events(self) -> Request:
        """The event stream the reader keeps open."""

    def event_decoder(self, directory: str | None) -> EventDecoder | None:
        """How the stream of `events()`, opened for `directory`, becomes events of the model;
        None when each of its objects is one already (the reader's fast path)."""


def split_model(model: str) -> tuple[str, str]:
    """`provider/model` into its two halves (the model id may itself contain slashes)."""
    provider, sep, model_id = model.partition("/")
    if not sep or not provider or not model_id:
        raise ValueError(f"model must look like provider/model, got {model!r}")
    return provider, model_id


def segment(value: str) -> str:
    """A value quoted as one path segment."""
    return quote(value, safe="")
