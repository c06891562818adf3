"""opencode 2.x (npm `@opencode/cli`, measured on 2.1.2): the routes and bodies of `Wire`, and
the translation of its answers and events into the runner's model (opencode 1.x's shapes), as
`../shared/opencode/PROTOCOL-2.md` measured them.

Requests. Everything is under `/api`; the directory rides in the session's `location`, not in a
query (`scoped=False` throughout); model and agent are set on the session (a 2.x prompt carries
text only, and with no model set a turn goes to a hosted model); rules are `permissions:
[{action, resource, effect}]` (the 1.x `permission` key is silently dropped, which would leave
the session allow-all, so it is never sent); an abort is an interrupt; asks are answered per
session.

Answers. `{"data": ...}` envelopes are opened; a session's `permissions` read back as 1.x
`permission` rules, so the runner's check that the server kept them holds on both lines; the
message list (`order=asc`) becomes `[{info, parts}]` with the same part ids the stream gets.

Events (`EventsV2`). One stream carries every location; each 2.x event becomes none, one or
several 1.x events. 2.x has no part ids: a text or reasoning part is keyed by its kind, message
and ordinal, a tool by its call id, and given a stable id made of them (`part_id`), so the stream
and a resync name the same part alike. A step is a message (`step.started` opens it,
`step.ended` closes it with `finish`, tokens and cost); an execution's end is a status `idle`
and `session.idle`, after a `session.error` when it failed or was interrupted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from core.guards import step_tokens
from core.opencode_versions import Capabilities
from core.protocol.wire import EventDecoder, Request, segment, split_model

__all__ = ["EventsV2", "WireV2", "ask_of", "messages_of", "part_id"]

# 1.x permission names and their 2.x actions, where they differ (PROTOCOL-2.md §4, §9).
ACTIONS = {"bash": ("shell",), "task": ("subagent",), "edit": ("edit", "write")}
FROM_ACTION = {"shell": "bash", "subagent": "task", "write": "edit"}
SECOND_ACTIONS = frozenset({"write"})
# The tools 2.1.2 offers the model, by their 1.x permission names: 2.x lists no tool ids.
TOOLS = ("bash", "edit", "execute", "glob", "grep", "question", "read", "skill", "task")
TOOLS += ("webfetch", "websearch", "write")
REPLIES = {"once": "once", "always": "always", "reject": "reject"}
ANSWER = (
    "When you are done, end your last message with your result: one JSON object in a "
    "```json fenced block, and nothing after it. It must match this JSON Schema:"
)
UNKNOWN_PREFIX = "opencode2."  # an event type EventsV2 does not translate, so renamed
ANSWER_WINDOW = 20_000  # characters at the end of a final text searched for its JSON object
ANSWER_TRIES = 64  # `{` positions tried there, at most
PAGE = 200  # messages a page: the most 2.1.2 gives ("a value less than or equal to 200")


def _data(answer: Any) -> Any:
    return answer.get("data") if isinstance(answer, Mapping) else answer


def _rules_out(rules: list[dict[str, str]]) -> list[dict[str, str]]:
    """1.x rules as 2.x's; `edit` covers 2.x's `write` too, as it covers 1.x's write tool."""
    out = []
    for rule in rules:
        name = rule["permission"]
        for action in ACTIONS.get(name, (name,)):
            out.append({"action": action, "resource": rule["pattern"], "effect": rule["action"]})
    return out


def _rules_in(rules: Any) -> list[dict[str, str]]:
    """2.x rules as 1.x's (the inverse of `_rules_out`)."""
    out: list[dict[str, str]] = []
    for rule in rules or ():
        if not isinstance(rule, Mapping):
            continue
        action = rule.get("action")
        one = {
            "permission": FROM_ACTION.get(action, action),
            "pattern": rule.get("resource"),
            "action": rule.get("effect"),
        }
        if action in SECOND_ACTIONS and out and out[-1] == one:
            continue  # the second half of a pair `_rules_out` made
        out.append(one)
    return out


def _session(answer: Any) -> dict[str, Any]:
    """A 2.x session as 1.x's: its rules as `permission`, its parent as `parentID`."""
    info = dict(_data(answer) or {})
    info["permission"] = _rules_in(info.pop("permissions", None))
    return info


def _agents(answer: Any) -> list[dict[str, Any]]:
    return [
        {**agent, "name": agent.get("id"), "permission": _rules_in(agent.get("permissions"))}
        for agent in _data(answer) or ()
        if isinstance(agent, Mapping)
    ]


def _status(answer: Any) -> dict[str, dict[str, Any]]:
    """`/api/session/active` as `/session/status`: the running sessions, busy."""
    return {sid: {"type": "busy"} for sid in (_data(answer) or {})}


class WireV2:
    """The requests of opencode 2.x."""

    fixed_tools = TOOLS  # 2.x lists no tools: no request is spent on them (`tool_ids`)

    def __init__(self, capabilities: Capabilities | None = None) -> None:
        self.capabilities = capabilities

    def health(self) -> Request:
        def read(answer: Any) -> dict[str, Any]:
            return {"healthy": True, "version": (answer or {}).get("version", "")}

        return Request("GET", "/api/info", "/api/info", scoped=False, read=read)

    def dispose_instance(self) -> Request:
        return Request("POST", "/api/location/reload", "/api/location/reload", scoped=False)

    def tool_ids(self) -> Request:
        return Request("GET", "/api/agent", "/api/agent", scoped=False, read=lambda _: list(TOOLS))

    def agents(self) -> Request:
        return Request("GET", "/api/agent", "/api/agent", scoped=False, read=_agents)

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
        body: dict[str, Any] = {"title": title}
        if agent:
            body["agent"] = agent
        if model:
            provider, model_id = split_model(model)
            body["model"] = {"providerID": provider, "id": model_id}
        if permission:
            body["permissions"] = _rules_out(permission)
        if parent_id:
            body["parentID"] = parent_id
        if directory:
            body["location"] = {"directory": directory}
        return Request(
            "POST", "/api/session", "/api/session", body=body, scoped=False, read=_session
        )

    def get_session(self, session_id: str) -> Request:
        path = f"/api/session/{segment(session_id)}"
        return Request("GET", "/api/session/{sessionID}", path, scoped=False, read=_session)

    def prompt_async(self, session_id: str, text: str, **options: Any) -> Request:
        """Text only: model and agent were set on the session (2.x ignores them here). 2.x has
        no structured output: a prompt with a `format` asks for the result as a JSON block
        (`ANSWER`), which the events and the message list read back as 1.x's `structured`."""
        form = options.get("format")
        if isinstance(form, Mapping) and form.get("type") == "json_schema":
            schema = json.dumps(form.get("schema") or {}, indent=2, sort_keys=True)
            text = f"{text}\n\n{ANSWER}\n```json\n{schema}\n```"
        body: dict[str, Any] = {"text": text}
        if isinstance(options.get("messageID"), str):  # a resend is the same message, once
            body["id"] = options["messageID"]
        path = f"/api/session/{segment(session_id)}/prompt"
        return Request("POST", "/api/session/{sessionID}/prompt", path, body=body, scoped=False)

    def prompt(self, session_id: str, text: str, **options: Any) -> Request:
        """2.x has no prompt that waits for its turn: the same as `prompt_async`."""
        return self.prompt_async(session_id, text, **options)

    def messages(self, session_id: str, *, limit: int | None = None) -> Request:
        """Every message, oldest first, a page of `PAGE` at a time; or the newest `limit`."""
        path = f"/api/session/{segment(session_id)}/message"
        route = "/api/session/{sessionID}/message"
        if limit is None:

            def follow(answer: Any) -> Request | None:
                cursor = (answer or {}).get("cursor") or {}
                if len(_data(answer) or ()) < PAGE or not cursor.get("next"):
                    return None
                params = {"cursor": cursor["next"], "limit": str(PAGE)}
                return Request("GET", route, path, params=params, scoped=False)

            def read_all(pages: list[Any]) -> list[dict[str, Any]]:
                return messages_of({"data": [m for page in pages for m in _data(page) or ()]})

            params = {"order": "asc", "limit": str(PAGE)}
            return Request(
                "GET", route, path, params=params, scoped=False, read=read_all, follow=follow
            )
        # The newest items include what is no message of 1.x's (an `idle` item ends each
        # execution): ask for more, keep the newest `limit` messages, oldest first.
        newest = {"order": "desc", "limit": str(min(3 * limit + 10, PAGE))}

        def read(answer: Any) -> list[dict[str, Any]]:
            found = messages_of({"data": list(reversed(_data(answer) or []))})
            return found[-limit:] if limit > 0 else []

        return Request("GET", route, path, params=newest, scoped=False, read=read)

    def status(self) -> Request:
        return Request(
            "GET", "/api/session/active", "/api/session/active", scoped=False, read=_status
        )

    def abort(self, session_id: str) -> Request:
        """True when a turn was running; False when none was (and no event will follow)."""
        path = f"/api/session/{segment(session_id)}/interrupt"
        return Request(
            "POST", "/api/session/{sessionID}/interrupt", path, scoped=False, read=_interrupted
        )

    def reply_permission(
        self, request_id: str, reply: str, *, session_id: str, message: str | None = None
    ) -> Request:
        body: dict[str, Any] = {"decision": REPLIES.get(reply, reply)}
        if message is not None:
            body["message"] = message
        route = "/api/session/{sessionID}/permission/{requestID}/reply"
        path = f"/api/session/{segment(session_id)}/permission/{segment(request_id)}/reply"
        return Request("POST", route, path, body=body, scoped=False, read=lambda _: True)

    def reply_permission_again(self, request_id: str, reply: str, *, session_id: str) -> Request:
        """2.x has one route for it."""
        return self.reply_permission(request_id, reply, session_id=session_id)

    def pending_permissions(self, session_id: str) -> Request:
        """Per session: `/api/permission/request` lists the server's own location's only."""

        def read(answer: Any) -> list[dict[str, Any]]:
            return [ask_of(a) for a in _data(answer) or () if isinstance(a, Mapping)]

        route = "/api/session/{sessionID}/permission"
        path = f"/api/session/{segment(session_id)}/permission"
        return Request("GET", route, path, scoped=False, read=read)

    def reject_question(self, request_id: str, *, session_id: str | None = None) -> Request:
        """A question is a form on 2.x, dismissed in its session."""
        route = "/api/session/{sessionID}/form/{formID}"
        path = f"/api/session/{segment(session_id or '')}/form/{segment(request_id)}"
        params = {"message": "This run is headless: nobody can answer questions."}
        return Request("DELETE", route, path, params=params, scoped=False, read=lambda _: True)

    def events(self) -> Request:
        return Request("GET", "/api/event", "/api/event", scoped=False)

    def event_decoder(self, directory: str | None) -> EventDecoder | None:  # noqa: ARG002
        """Every location's events come on one stream; the tracker keeps its session tree's."""
        return EventsV2().decode


def _interrupted(answer: Any) -> bool:
    """`{"interrupted": false}`: the session ran nothing to interrupt."""
    body = _data(answer) if isinstance(_data(answer), Mapping) else answer
    return not (isinstance(body, Mapping) and body.get("interrupted") is False)


def part_id(message_id: str, kind: str, key: int | str) -> str:
    """The id the runner gives a 2.x part: its message, its kind and its ordinal (text and
    reasoning) or call id (tools), the same on the stream and in a resync."""
    return f"prt_{message_id}_{kind}_{key}"


# 2.x event types with nothing for the runner (its own bookkeeping, boot noise).
NOISE = frozenset(
    {
        "session.inbox.delivered",
        "session.instructions.updated",
        "session.usage.updated",
        "session.step.streamed",
        "session.tool.input.ended",
        "shell.created",
        "shell.exited",
        # the prompt 2.x adds before it retries a response cut mid-stream ("The previous response
        # was interrupted. Continue ..."): the retry status already says it
        "session.synthetic",
        # a compaction's course: its end is `session.compacted`; a failed one fails the execution
        "session.compaction.started",
        "session.compaction.delta",
        "session.compaction.failed",
        "worktree.resolved",
        "vcs.branch.updated",
        # boot noise, on the first prompt in a location (`data: {}`)
        "project.updated",
        "integration.updated",
        "provider.updated",
        "model.updated",
        "agent.updated",
        "command.updated",
        "skill.updated",
        "websearch.updated",
        "reference.updated",
        "plugin.updated",
    }
)


def _error(error: Any) -> dict[str, Any]:
    """A 2.x error `{type, message, status?}` as 1.x's `{name, data: {message, ...}}`."""
    error = error if isinstance(error, Mapping) else {}
    kind, message = str(error.get("type") or ""), str(error.get("message") or "")
    if kind == "aborted":
        return {"name": "MessageAbortedError", "data": {"message": message}}
    data: dict[str, Any] = {"message": message, "isRetryable": False}
    if error.get("status") is not None:
        data["statusCode"] = error["status"]
    return {
        "name": "APIError" if kind.startswith("provider.") else kind or "UnknownError",
        "data": data,
    }


def _tokens(tokens: Any) -> dict[str, Any]:
    """2.x's token counts; `total`, which 2.x does not send, is every kind added up (as the
    runner's guards count a step without one: cache reads and writes included)."""
    tokens = dict(tokens) if isinstance(tokens, Mapping) else {}
    if "total" not in tokens:
        tokens["total"] = step_tokens(tokens)
    return tokens


def _output(content: Any) -> str:
    return "\n".join(
        str(item.get("text", "")) for item in content or () if isinstance(item, Mapping)
    )


_FENCED = re.compile(r"```(?:json)?\s*\n(.*?)\n\s*```", re.DOTALL)


def json_answer(text: str) -> Any:
    """The structured result a final text ends with: its last ```json block, else a JSON
    object that closes the text; None when it holds neither (the done checks say so). It runs
    on the stream's thread for every finished turn, so the closing object is looked for in the
    text's last `ANSWER_WINDOW` characters, from its last `{` back, `ANSWER_TRIES` at most."""
    text = text or ""
    blocks = _FENCED.findall(text)
    if blocks and (found := _json_object(blocks[-1])) is not None:
        return found
    tail = text.rstrip()
    if not tail.endswith("}"):
        return None
    window = max(0, len(tail) - ANSWER_WINDOW)
    at = tail.rfind("{", window)
    for _ in range(ANSWER_TRIES):  # inner objects fail (text follows them), the closing one parses
        if at < 0:
            break
        if (found := _json_object(tail[at:])) is not None:
            return found
        at = tail.rfind("{", window, at)
    return None


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def ask_of(data: Mapping[str, Any]) -> dict[str, Any]:
    """A 2.x permission request as 1.x's (`permission.asked` properties)."""
    source = data.get("source") if isinstance(data.get("source"), Mapping) else {}
    action = str(data.get("action") or "")
    return {
        "id": data.get("id"),
        "sessionID": data.get("sessionID"),
        "permission": FROM_ACTION.get(action, action),
        "patterns": list(data.get("resources") or ()),
        "always": list(data.get("save") or ()),
        "metadata": {},
        "tool": {"messageID": source.get("messageID"), "callID": source.get("id")},
    }


def _event(kind: str, /, **properties: Any) -> dict[str, Any]:
    return {"type": kind, "properties": properties}


class EventsV2:
    """Turns one 2.x stream into 1.x events (see the module docstring). It keeps what a later
    event needs of an earlier one: when a text started, a tool's name and input, a message's
    start, each dropped at its end."""

    def __init__(self) -> None:
        self._started: dict[str, int] = {}  # part id -> when its text started
        self._tools: dict[str, dict[str, Any]] = {}  # open tool part id -> its name and input
        self._said: dict[str, str] = {}  # open message id -> its last text (`json_answer`)
        self._messages: dict[str, dict[str, Any]] = {}  # open message id -> its info
        self._tries: dict[str, int] = {}  # message id -> its steps started (a retry starts again)

    def decode(self, event: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        kind = event.get("type")
        data = event.get("data")
        if not isinstance(kind, str) or not isinstance(data, dict) or kind in NOISE:
            return ()
        if kind == "server.connected":
            return (_event("server.connected"),)
        handler = _HANDLERS.get(kind)
        created = event.get("created") if isinstance(event.get("created"), int) else 0
        if handler is not None:
            return handler(self, data, created)
        # A type the runner does not know: shown, never acted on (2.x's binary also names types
        # 1.x uses, such as `session.idle`, in 2.x's shapes: under its own name one would be).
        return ({"type": f"{UNKNOWN_PREFIX}{kind}", "properties": dict(data)},)

    # -- sessions ----------------------------------------------------------------------------

    def _created(self, data: dict[str, Any], created: int) -> tuple[dict[str, Any], ...]:
        sid = data.get("sessionID")
        info = {"id": sid, "title": data.get("title") or "", "time": {"created": created}}
        if data.get("parentID"):
            info["parentID"] = data["parentID"]
        return (_event("session.created", sessionID=sid, info=info),)

    def _renamed(self, data: dict[str, Any], _created: int) -> tuple[dict[str, Any], ...]:
        sid = data.get("sessionID")
        return (
            _event("session.updated", sessionID=sid, info={"id": sid, "title": data.get("title")}),
        )

    def _enqueued(self, data: dict[str, Any], created: int) -> tuple[dict[str, Any], ...]:
        sid, mid = data.get("sessionID"), data.get("inboxID")
        item = data.get("item") if isinstance(data.get("item"), dict) else {}
        if item.get("type") != "user" or not isinstance(mid, str):
            return ()
        text = str((item.get("payload") or {}).get("text", ""))
        info = {"id": mid, "sessionID": sid, "role": "user", "time": {"created": created}}
        part = {"id": part_id(mid, "text", 0), "sessionID": sid, "messageID": mid}
        part |= {"type": "text", "text": text}
        return (
            _event("message.updated", sessionID=sid, info=info),
            _event("message.part.updated", sessionID=sid, part=part),
        )

    def _compacted(self, data: dict[str, Any], _created: int) -> tuple[dict[str, Any], ...]:
        return (_event("session.compacted", sessionID=data.get("sessionID")),)

    def _busy(self, data: dict[str, Any], _created: int) -> tuple[dict[str, Any], ...]:
        sid = data.get("sessionID")
        return (_event("session.status", sessionID=sid, status={"type": "busy"}),)

    def _ended(
        self, data: dict[str, Any], _created: int, error: Any = None
    ) -> tuple[dict[str, Any], ...]:
        sid = data.get("sessionID")
        idle = (
            _event("session.status", sessionID=sid, status={"type": "idle"}),
            _event("session.idle", sessionID=sid),
        )
        return (
            idle if error is None else (_event("session.error", sessionID=sid, error=error), *idle)
        )

    def _failed(self, data: dict[str, Any], created: int) -> tuple[dict[str, Any], ...]:
        return self._ended(data, created, _error(data.get("error")))

    def _interrupted(self, data: dict[str, Any], created: int) -> tuple[dict[str, Any], ...]:
        why = f"interrupted ({data.get('reason') or 'unknown'})"
        return self._ended(data, created, {"name": "MessageAbortedError", "data": {"message": why}})

    def _retry(self, data: dict[str, Any], _created: int) -> tuple[dict[str, Any], ...]:
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        # 2.x counts tries (the first retry is attempt 2); 1.x counts retries (it is 1).
        tries = data.get("attempt") if isinstance(data.get("attempt"), int) else 2
        status = {
            "type": "retry",
            "attempt": max(tries - 1, 1),
            "message": error.get("message", ""),
        }
        status["next"] = data.get("at")
        return (_event("session.status", sessionID=data.get("sessionID"), status=status),)

    # -- steps (messages) --------------------------------------------------------------------

    def _step_started(self, data: dict[str, Any], created: int) -> tuple[dict[str, Any], ...]:
        sid, mid = data.get("sessionID"), data.get("assistantMessageID")
        if not isinstance(mid, str):
            return ()
        model = data.get("model") if isinstance(data.get("model"), dict) else {}
        info = {"id": mid, "sessionID": sid, "role": "assistant", "time": {"created": created}}
        info |= {"modelID": model.get("id"), "providerID": model.get("providerID")}
        info["mode"] = data.get("agent")
        self._messages[mid] = info
        tries = self._tries[mid] = self._tries.get(mid, 0) + 1
        # A provider retry starts the same message's step again: a step-start of its own, as
        # `opencode run` prints it (a resync knows the first one only, so it keeps its id).
        key = "start" if tries == 1 else f"start_{tries}"
        part = {"id": part_id(mid, "step", key), "sessionID": sid, "messageID": mid}
        part["type"] = "step-start"
        if isinstance(data.get("snapshot"), str):
            part["snapshot"] = data["snapshot"]
        return (
            _event("message.updated", sessionID=sid, info=info),
            _event("message.part.updated", sessionID=sid, part=part),
        )

    def _step_ended(self, data: dict[str, Any], created: int) -> tuple[dict[str, Any], ...]:
        sid, mid = data.get("sessionID"), data.get("assistantMessageID")
        if not isinstance(mid, str):
            return ()
        info = dict(self._messages.pop(mid, {"id": mid, "sessionID": sid, "role": "assistant"}))
        self._tries.pop(mid, None)
        tokens, finish = _tokens(data.get("tokens")), data.get("finish")
        info |= {"finish": finish, "cost": data.get("cost", 0), "tokens": tokens}
        said = self._said.pop(mid, "")
        if finish == "stop" and (answer := json_answer(said)) is not None:
            info["structured"] = answer  # what 1.x's StructuredOutput tool would have held
        info["time"] = {**info.get("time", {}), "completed": created}
        part = {"id": part_id(mid, "step", "finish"), "sessionID": sid, "messageID": mid}
        part |= {"type": "step-finish", "reason": finish, "cost": data.get("cost", 0)}
        part["tokens"] = tokens
        if isinstance(data.get("snapshot"), str):
            part["snapshot"] = data["snapshot"]
        return (
            _event("message.part.updated", sessionID=sid, part=part),
            _event("message.updated", sessionID=sid, info=info),
        )

    def _step_failed(self, data: dict[str, Any], created: int) -> tuple[dict[str, Any], ...]:
        sid, mid = data.get("sessionID"), data.get("assistantMessageID")
        if not isinstance(mid, str):
            return ()
        info = dict(self._messages.pop(mid, {"id": mid, "sessionID": sid, "role": "assistant"}))
        self._said.pop(mid, None)
        info |= {"finish": "error", "error": _error(data.get("error")), "cost": data.get("cost", 0)}
        info["tokens"] = _tokens(data.get("tokens"))
        info["time"] = {**info.get("time", {}), "completed": created}
        return (_event("message.updated", sessionID=sid, info=info),)

    # -- tools -------------------------------------------------------------------------------

    def _tool(self, data: dict[str, Any], status: str, **state: Any) -> tuple[dict[str, Any], ...]:
        sid, mid, call = data.get("sessionID"), data.get("assistantMessageID"), data.get("id")
        if not isinstance(mid, str) or not isinstance(call, str):
            return ()
        pid = part_id(mid, "tool", call)
        known = self._tools.setdefault(pid, {"name": None, "input": None})
        if isinstance(data.get("name"), str):
            known["name"] = data["name"]  # only the first event names it
        if "input" in state:
            known["input"] = state.pop("input")
        if status not in ("pending", "running"):
            self._tools.pop(pid, None)
            if known["name"] is None or (status == "completed" and known["input"] is None):
                # The event that named it, or the call a success needs, was lost (a cut
                # stream): left open, the resync that follows every loss ends it whole
                # (`messages_of`). A failure without a call is real (its arguments were bad).
                status = "running"
        part = {"id": pid, "sessionID": sid, "messageID": mid, "type": "tool", "callID": call}
        part["tool"] = known["name"] or "tool"
        part["state"] = {"status": status, "input": known["input"] or {}, **state}
        return (_event("message.part.updated", sessionID=sid, part=part),)

    def _tool_started(self, data: dict[str, Any], _created: int) -> tuple[dict[str, Any], ...]:
        return self._tool(data, "pending")

    def _tool_called(self, data: dict[str, Any], _created: int) -> tuple[dict[str, Any], ...]:
        inputs = data.get("input") if isinstance(data.get("input"), dict) else {}
        return self._tool(data, "running", input=inputs)

    def _tool_progress(self, data: dict[str, Any], _created: int) -> tuple[dict[str, Any], ...]:
        return self._tool(data, "running", metadata=data.get("metadata") or {})

    def _tool_success(self, data: dict[str, Any], created: int) -> tuple[dict[str, Any], ...]:
        output, metadata = _output(data.get("content")), data.get("metadata") or {}
        return self._tool(
            data, "completed", output=output, metadata=metadata, time={"end": created}
        )

    def _tool_failed(self, data: dict[str, Any], created: int) -> tuple[dict[str, Any], ...]:
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        return self._tool(
            data, "error", error=str(error.get("message", "failed")), time={"end": created}
        )

    # -- asks --------------------------------------------------------------------------------

    def _asked(self, data: dict[str, Any], _created: int) -> tuple[dict[str, Any], ...]:
        return (_event("permission.asked", **ask_of(data)),)

    def _replied(self, data: dict[str, Any], _created: int) -> tuple[dict[str, Any], ...]:
        fields = {"sessionID": data.get("sessionID"), "requestID": data.get("requestID")}
        return (_event("permission.replied", **fields, reply=data.get("reply")),)

    def _form(self, data: dict[str, Any], _created: int) -> tuple[dict[str, Any], ...]:
        form = data.get("form") if isinstance(data.get("form"), dict) else {}
        questions = [
            {
                "question": f.get("description", ""),
                "header": f.get("title", ""),
                "options": f.get("options", []),
            }
            for f in form.get("fields") or ()
            if isinstance(f, Mapping)
        ]
        request = {"id": form.get("id"), "sessionID": form.get("sessionID"), "questions": questions}
        return (_event("question.asked", **request),)


def _text(kind: str, phase: str) -> Any:
    """The handler of `session.<kind>.<phase>`: a text or reasoning part opens (empty), grows
    by deltas, and ends whole."""

    def handle(self: EventsV2, data: dict[str, Any], created: int) -> tuple[dict[str, Any], ...]:
        sid, mid = data.get("sessionID"), data.get("assistantMessageID")
        if not isinstance(mid, str):
            return ()
        pid = part_id(mid, kind, data.get("ordinal", 0))
        if phase == "delta":
            fields = {"sessionID": sid, "messageID": mid, "partID": pid, "field": "text"}
            return (_event("message.part.delta", **fields, delta=data.get("delta")),)
        part = {"id": pid, "sessionID": sid, "messageID": mid, "type": kind}
        if phase == "started":
            self._started[pid] = created
            part |= {"text": "", "time": {"start": created}}
        else:
            start = self._started.pop(pid, created)
            part |= {"text": data.get("text", ""), "time": {"start": start, "end": created}}
            if kind == "reasoning" and isinstance(data.get("native"), dict):
                part["metadata"] = data["native"]  # the provider's field, as `run` shows it
            if kind == "text":
                self._said[mid] = str(data.get("text") or "")
        return (_event("message.part.updated", sessionID=sid, part=part),)

    return handle


_HANDLERS = {
    "session.created": EventsV2._created,
    "session.renamed": EventsV2._renamed,
    "session.inbox.enqueued": EventsV2._enqueued,
    "session.execution.started": EventsV2._busy,
    "session.compaction.ended": EventsV2._compacted,
    "session.execution.succeeded": EventsV2._ended,
    "session.execution.failed": EventsV2._failed,
    "session.execution.interrupted": EventsV2._interrupted,
    "session.retry.scheduled": EventsV2._retry,
    "session.step.started": EventsV2._step_started,
    "session.step.ended": EventsV2._step_ended,
    "session.step.failed": EventsV2._step_failed,
    "session.text.started": _text("text", "started"),
    "session.text.delta": _text("text", "delta"),
    "session.text.ended": _text("text", "ended"),
    "session.reasoning.started": _text("reasoning", "started"),
    "session.reasoning.delta": _text("reasoning", "delta"),
    "session.reasoning.ended": _text("reasoning", "ended"),
    "session.tool.input.started": EventsV2._tool_started,
    "session.tool.called": EventsV2._tool_called,
    "session.tool.progress": EventsV2._tool_progress,
    "session.tool.success": EventsV2._tool_success,
    "session.tool.failed": EventsV2._tool_failed,
    "permission.asked": EventsV2._asked,
    "permission.replied": EventsV2._replied,
    "form.created": EventsV2._form,
}


def messages_of(answer: Any) -> list[dict[str, Any]]:
    """The message list, oldest first, as 1.x's `[{info, parts}]`, parts named as the stream
    names them (`part_id`). User messages and assistant steps only (`idle` and other items say
    nothing the runner reads from a snapshot). A step not completed yet keeps its last text or
    reasoning open."""
    out = []
    for item in _data(answer) or ():
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            continue
        kind, mid = item.get("type"), item["id"]
        time = dict(item.get("time") or {})
        if kind == "user":
            info = {"id": mid, "role": "user", "time": time}
            part = {"id": part_id(mid, "text", 0), "messageID": mid, "type": "text"}
            out.append({"info": info, "parts": [part | {"text": item.get("text", "")}]})
        elif kind == "assistant":
            out.append(_assistant(item, mid, time))
    return out


def _assistant(item: Mapping[str, Any], mid: str, time: dict[str, Any]) -> dict[str, Any]:
    model = item.get("model") if isinstance(item.get("model"), Mapping) else {}
    done = time.get("completed") is not None
    info: dict[str, Any] = {"id": mid, "role": "assistant", "mode": item.get("agent")}
    info |= {"modelID": model.get("id"), "providerID": model.get("providerID")}
    info |= {"time": {"created": time.get("created"), "completed": time.get("completed")}}
    if item.get("finish") is not None:
        info |= {"finish": item["finish"], "cost": item.get("cost", 0)}
        info["tokens"] = _tokens(item.get("tokens"))
    if item.get("error") is not None:
        info["error"] = _error(item["error"])
    content = [c for c in item.get("content") or () if isinstance(c, Mapping)]
    said = [str(c.get("text") or "") for c in content if c.get("type") == "text"]
    if item.get("finish") == "stop" and said and (answer := json_answer(said[-1])) is not None:
        info["structured"] = answer  # as `EventsV2` reads it from the stream
    parts: list[dict[str, Any]] = [
        {"id": part_id(mid, "step", "start"), "messageID": mid, "type": "step-start"}
    ]
    ordinals: dict[str, int] = {}
    for index, piece in enumerate(content):
        kind = piece.get("type")
        base = {"messageID": mid}
        if kind in ("text", "reasoning"):
            ordinal = ordinals[kind] = ordinals.get(kind, -1) + 1
            still = not done and index == len(content) - 1
            stamp = {"start": time.get("created")} | (
                {} if still else {"end": time.get("completed")}
            )
            parts.append(
                base
                | {
                    "id": part_id(mid, kind, ordinal),
                    "type": kind,
                    "text": piece.get("text", ""),
                    "time": stamp,
                }
            )
        elif kind == "tool" and isinstance(piece.get("id"), str):
            state = piece.get("state") if isinstance(piece.get("state"), Mapping) else {}
            status = state.get("status") or "running"
            tool_state: dict[str, Any] = {"status": status, "input": state.get("input") or {}}
            if status == "completed":
                tool_state |= {
                    "output": _output(state.get("content")),
                    "metadata": state.get("metadata") or {},
                }
            elif status == "error":
                error = state.get("error") if isinstance(state.get("error"), Mapping) else {}
                tool_state["error"] = str(error.get("message", "failed"))
            call = piece["id"]
            parts.append(
                base
                | {
                    "id": part_id(mid, "tool", call),
                    "type": "tool",
                    "callID": call,
                    "tool": piece.get("name") or "tool",
                    "state": tool_state,
                }
            )
    if item.get("finish") is not None and item.get("finish") != "error":
        finish = {"id": part_id(mid, "step", "finish"), "messageID": mid, "type": "step-finish"}
        parts.append(
            finish
            | {
                "reason": item["finish"],
                "cost": item.get("cost", 0),
                "tokens": _tokens(item.get("tokens")),
            }
        )
    return {"info": info, "parts": parts}
