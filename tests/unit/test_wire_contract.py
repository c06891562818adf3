"""The contract of the protocol seam (`core.protocol.Wire`), for every implementation.

Each request a wire builds must be a route of its opencode line's OpenAPI document (captured
from the real server), with the route's parameters filled in, only query parameters the route
declares, and a body its schema accepts. Every operation of the interface is exercised. A second
protocol passes this test with its own document before an actor uses it.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import jsonschema
import pytest

from core.opencode_versions import capabilities as capabilities_for
from core.protocol import Request, Wire, wire_for
from core.protocol.v1 import WireV1
from tests.helpers import CAPTURES, PROJECT_ROOT

pytestmark = pytest.mark.timeout(60)

OPENAPI = PROJECT_ROOT / "tests" / "fixtures" / "openapi"
SESSION = "ses_0123456789abcdefABCDEF"
CHILD = "ses_1123456789abcdefABCDEF"
REQUEST = "per_0123456789abcdefABCDEF"
QUESTION = "que_0123456789abcdefABCDEF"
MESSAGE, PART = "msg_0123456789abcdefABCDEF", "prt_0123456789abcdefABCDEF"
RULES = [{"permission": "bash", "pattern": "*", "action": "deny"}]
SCHEMA = {"type": "json_schema", "schema": {"type": "object", "properties": {}}}

# Every operation of `Wire`, called as the runner calls it (the fullest form, and the barest).
CALLS: dict[str, Callable[[Wire], Request]] = {
    "health": lambda w: w.health(),
    "dispose_instance": lambda w: w.dispose_instance(),
    "tool_ids": lambda w: w.tool_ids(),
    "agents": lambda w: w.agents(),
    "create_session": lambda w: w.create_session(
        title="phase",
        agent="build",
        model="test/mock-model",
        permission=RULES,
        parent_id=CHILD,
        directory="/tmp/project",
    ),
    "create_session_bare": lambda w: w.create_session(title="phase"),
    "get_session": lambda w: w.get_session(SESSION),
    "prompt_async": lambda w: w.prompt_async(
        SESSION,
        "Do it.",
        model="test/mock-model",
        agent="build",
        variant="high",
        system="Be brief.",
        tools={"bash": False},
        messageID=MESSAGE,
        partID=PART,
        format=SCHEMA,
    ),
    "prompt_async_bare": lambda w: w.prompt_async(SESSION, "Do it."),
    "prompt": lambda w: w.prompt(SESSION, "Do it.", model="test/mock-model", messageID=MESSAGE),
    "messages": lambda w: w.messages(SESSION, limit=20),
    "messages_all": lambda w: w.messages(SESSION),
    "status": lambda w: w.status(),
    "abort": lambda w: w.abort(SESSION),
    "reply_permission": lambda w: w.reply_permission(
        REQUEST, "reject", session_id=SESSION, message="not allowed"
    ),
    "reply_permission_once": lambda w: w.reply_permission(REQUEST, "once", session_id=SESSION),
    "reply_permission_again": lambda w: w.reply_permission_again(
        REQUEST, "reject", session_id=SESSION
    ),
    "pending_permissions": lambda w: w.pending_permissions(SESSION),
    "reject_question": lambda w: w.reject_question(QUESTION, session_id=SESSION),
    "events": lambda w: w.events(),
}

# Each implementation with the OpenAPI document of the server it speaks to.
IMPLEMENTATIONS = {
    "1.18.33": (lambda: wire_for(capabilities_for("1.18.33")), "openapi-1.18.33.json"),
    "2.1.2": (lambda: wire_for(capabilities_for("2.1.2")), "openapi-2.1.2.json"),
}


@cache
def document(name: str) -> dict[str, Any]:
    return json.loads((OPENAPI / name).read_text())


def check(request: Request, doc: dict[str, Any]) -> None:
    """`request` is a route of `doc` as the route declares it; AssertionError says how not."""
    operation = doc["paths"].get(request.route, {}).get(request.method.lower())
    assert operation is not None, f"{request.method} {request.route}: not a route of the server"
    template = re.escape(request.route).replace(r"\{", "{").replace(r"\}", "}")
    pattern = re.sub(r"\{[A-Za-z]+\}", "[^/]+", template)
    assert re.fullmatch(pattern, request.path), f"{request.path} does not fill {request.route}"
    declared = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "query"}
    sent = set(request.params) | ({"directory"} if request.scoped else set())
    assert sent <= declared, f"{request.route}: undeclared query {sorted(sent - declared)}"
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if request.body is None:
        assert not operation.get("requestBody", {}).get("required"), f"{request.route}: no body"
        return
    assert body is not None, f"{request.route} takes no JSON body"
    schema = {**body["schema"], "components": doc.get("components", {})}
    jsonschema.Draft202012Validator(schema).validate(request.body)


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("line", IMPLEMENTATIONS)
def test_every_request_is_a_route_of_the_servers_api(line: str, call: str) -> None:
    make, name = IMPLEMENTATIONS[line]
    check(CALLS[call](make()), document(name))


def test_every_operation_of_the_interface_is_exercised() -> None:
    operations = {name for name, _ in inspect.getmembers(Wire, inspect.isfunction)}
    exercised = {
        call.removesuffix("_bare").removesuffix("_all").removesuffix("_once") for call in CALLS
    }
    exercised |= {"event_decoder"}  # the stream's side: `test_the_stream_becomes_events_...`
    assert operations - {name for name in operations if name.startswith("_")} == exercised


# Each line's captured stream (`tests/fixtures/captures`), as an implementation reads it.
STREAMS = {
    "1.18.33": ("1.18.33", "a_basic.event.jsonl", "/srv/fixture/proj"),
    "1.14.48": ("1.14.48", "a_basic_coldstart.global_event.jsonl", "/srv/fixture/proj"),
}


def stream_objects(name: str) -> list[dict[str, Any]]:
    frames = [json.loads(line)["raw"] for line in (CAPTURES / name).read_text().splitlines()]
    data = [line.removeprefix("data: ") for raw in frames for line in raw if line.strip()]
    return [json.loads(text) for text in data]


@pytest.mark.parametrize("stream", STREAMS)
def test_the_stream_becomes_events_of_the_runners_model(stream: str) -> None:
    version, capture, directory = STREAMS[stream]
    decoder = wire_for(capabilities_for(version)).event_decoder(directory)
    objects = stream_objects(capture)
    events = [e for obj in objects for e in ((obj,) if decoder is None else decoder(obj))]
    assert events[0]["type"] == "server.connected"  # what the reader counts connections by
    assert all(isinstance(e["type"], str) and isinstance(e["properties"], dict) for e in events)
    assert "session.idle" in {e["type"] for e in events}


def test_the_global_stream_of_1_14_keeps_its_directorys_events_once() -> None:
    decode = wire_for(capabilities_for("1.14.48")).event_decoder("/p")
    assert decode is not None
    connected = {"payload": {"type": "server.connected", "properties": {}}}
    ours = {"directory": "/p", "payload": {"type": "session.idle", "properties": {"id": "s"}}}
    theirs = {"directory": "/q", "payload": {"type": "session.idle", "properties": {}}}
    broken = {"directory": "/p", "payload": "not an event"}
    sync = {"directory": "/p", "payload": {"type": "sync", "syncEvent": {"type": "x.1"}}}
    assert decode(connected) == (connected["payload"],)
    assert decode(ours) == (ours["payload"],)
    assert decode(theirs) == decode(broken) == ()
    assert decode(sync) == ()  # the route's second copy of each change
    assert WireV1(capabilities_for("1.18.33")).event_decoder("/p") is None  # `/event`: as is


def test_each_implementation_has_every_operation() -> None:
    operations = {
        n for n, _ in inspect.getmembers(Wire, inspect.isfunction) if not n.startswith("_")
    }
    for line, (make, _) in IMPLEMENTATIONS.items():
        wire = make()
        assert all(callable(getattr(wire, name, None)) for name in operations), line


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (Request("POST", "/session/{sessionID}/prompt", "/session/x/prompt"), "not a route"),
        (Request("GET", "/session/{sessionID}", "/session/a/b"), "does not fill"),
        (Request("GET", "/session/status", "/session/status", params={"all": "1"}), "undeclared"),
        (
            Request(
                "POST",
                "/permission/{requestID}/reply",
                "/permission/p/reply",
                body={"reply": "maybe"},
            ),
            "is not one of",
        ),
    ],
)
def test_the_contract_catches_a_wrong_request(request_: Request, problem: str) -> None:
    """The check itself can fail: each broken request is refused, saying why."""
    with pytest.raises((AssertionError, jsonschema.ValidationError), match=problem):
        check(request_, document("openapi-1.18.33.json"))


def test_opencode_1_14_reads_every_directorys_stream() -> None:
    """1.14's wire opens `/global/event` (unscoped: the reader keeps its directory's events)."""
    request = wire_for(capabilities_for("1.14.48")).events()
    assert (request.route, request.scoped) == ("/global/event", False)
    assert WireV1().events().route == "/event"
