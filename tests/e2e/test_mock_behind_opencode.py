"""The mock LLM behind the real opencode server: each scripted behaviour, as opencode sees it."""

from __future__ import annotations

import itertools

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _texts(snapshot, role="assistant"):
    return [
        part["text"]
        for message in snapshot
        if message["info"]["role"] == role
        for part in message["parts"]
        if part["type"] == "text"
    ]


def _tools(snapshot):
    return [part for message in snapshot for part in message["parts"] if part["type"] == "tool"]


def _statuses(tap, session_id, kind):
    return [
        e["properties"]["status"]
        for e in tap.of_type("session.status", session_id)
        if e["properties"]["status"]["type"] == kind
    ]


def test_prompt_leaves_exactly_the_scripted_text(stack):
    s = stack({"turns": [{"text": ["Hello", " world", "!"]}]})
    session = s.new_session()
    s.client.prompt_async(session, "Say hello", model="test/mock-model")
    s.tap.wait_idle(session, timeout=30)
    snapshot = s.client.messages(session)
    assert _texts(snapshot) == ["Hello world!"]
    assert _texts(snapshot, role="user") == ["Say hello"]
    assert [entry.turn for entry in s.mock.journal.turns()] == [0]
    deltas = [e["properties"]["delta"] for e in s.tap.of_type("message.part.delta", session)]
    assert deltas == ["Hello", " world", "!"]


def test_read_tool_completes_on_a_fixture_file(stack):
    s = stack(
        {
            "turns": [
                {
                    "text": "Reading.",
                    "tool_calls": [{"name": "read", "arguments": {"filePath": "README.md"}}],
                },
                {"text": "Done reading."},
            ]
        }
    )
    session = s.new_session()
    s.client.prompt_async(session, "Read the README", model="test/mock-model")
    s.tap.wait_idle(session, timeout=30)
    snapshot = s.client.messages(session)
    (tool,) = _tools(snapshot)
    assert tool["tool"] == "read"
    assert tool["state"]["status"] == "completed"
    assert "Hello from the fixture." in tool["state"]["output"]
    assert _texts(snapshot) == ["Reading.", "Done reading."]
    second_request = s.mock.journal.turns()[1].body
    tool_results = [m for m in second_request["messages"] if m["role"] == "tool"]
    assert "Hello from the fixture." in tool_results[0]["content"]


def test_429_twice_with_retry_after_then_success(stack):
    faults = [{"attempt": [1, 2], "kind": "429", "retry_after": 1}]
    s = stack({"turns": [{"text": "Recovered after 429.", "faults": faults}]})
    session = s.new_session()
    s.client.prompt_async(session, "Go", model="test/mock-model")
    s.tap.wait_idle(session, timeout=40)
    retries = _statuses(s.tap, session, "retry")
    assert [status["attempt"] for status in retries] == [1, 2]
    attempts = s.mock.journal.turns()
    assert [(entry.attempt, entry.status) for entry in attempts] == [(1, 429), (2, 429), (3, 200)]
    gaps = [later.time - earlier.time for earlier, later in itertools.pairwise(attempts)]
    assert all(0.9 <= gap <= 2.5 for gap in gaps), gaps
    assert _texts(s.client.messages(session)) == ["Recovered after 429."]
    assert s.tap.of_type("session.error", session) == []


def test_persistent_500_ends_in_session_error(stack):
    faults = [{"attempt": "all", "kind": "500", "retry_after": 0.2, "message": "mock down"}]
    s = stack({"turns": [{"text": "never", "faults": faults}]})
    session = s.new_session()
    s.client.prompt_async(session, "Go", model="test/mock-model")
    error = s.tap.wait_for(lambda e: e.get("type") == "session.error", timeout=60)
    assert error["properties"]["error"]["name"] == "APIError"
    assert error["properties"]["error"]["data"]["statusCode"] == 500
    assert "mock down" in error["properties"]["error"]["data"]["message"]
    s.tap.wait_idle(session, timeout=10)
    # opencode retries a 5xx five times before giving up: six requests in all.
    assert len(s.mock.journal.turns()) == 6
    assert len(_statuses(s.tap, session, "retry")) == 5


def test_400_fails_at_once(stack):
    faults = [{"attempt": "all", "kind": "400", "message": "Bad request from mock"}]
    s = stack({"turns": [{"text": "never", "faults": faults}]})
    session = s.new_session()
    s.client.prompt_async(session, "Go", model="test/mock-model")
    error = s.tap.wait_for(lambda e: e.get("type") == "session.error", timeout=30)
    data = error["properties"]["error"]["data"]
    assert (data["statusCode"], data["isRetryable"]) == (400, False)
    s.tap.wait_idle(session, timeout=10)
    assert len(s.mock.journal.turns()) == 1
    assert _statuses(s.tap, session, "retry") == []


def test_stall_after_headers_keeps_the_session_busy_until_aborted(stack):
    s = stack({"turns": [{"text": "never", "faults": [{"attempt": 1, "kind": "stall"}]}]})
    session = s.new_session()
    s.client.prompt_async(session, "Go", model="test/mock-model")
    s.mock.journal.wait_for(1, timeout=30)
    # opencode has no timeout of its own on a silent stream: the session stays busy.
    with pytest.raises(AssertionError, match="no matching event"):
        s.tap.wait_idle(session, timeout=3)
    assert s.client.status()[session]["type"] == "busy"
    assert s.client.abort(session) is True
    error = s.tap.wait_for(lambda e: e.get("type") == "session.error", timeout=10)
    assert error["properties"]["error"]["name"] == "MessageAbortedError"
    s.tap.wait_idle(session, timeout=10)
    assert len(s.mock.journal.turns()) == 1


def test_cut_stream_is_retried_by_opencode_and_then_succeeds(stack):
    faults = [{"attempt": 1, "kind": "cut", "after_chunks": 2}]
    s = stack({"turns": [{"text": ["Whole ", "answer."], "faults": faults}]})
    session = s.new_session()
    s.client.prompt_async(session, "Go", model="test/mock-model")
    s.tap.wait_idle(session, timeout=40)
    assert [(e.attempt, e.fault) for e in s.mock.journal.turns()] == [(1, "cut"), (2, None)]
    assert _texts(s.client.messages(session))[-1] == "Whole answer."
