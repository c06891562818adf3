"""Pure chunk building: order, verbatim deltas, tool-call indexes and argument splitting."""

from __future__ import annotations

import json

import pytest

from mock._chunks import (
    DONE_EVENT,
    ESTIMATE_CAP,
    MALFORMED_EVENT,
    Envelope,
    build_chunks,
    build_completion,
    encode_event,
    error_body,
    split_arguments,
    usage_of,
)
from mock._model import ToolCall, Turn, Usage

pytestmark = pytest.mark.timeout(30)

ENVELOPE = Envelope(id="chatcmpl-test", created=1700000000, model="mock-model")
CALLS = (
    ToolCall(id="call_a", name="read", arguments='{"filePath":"/srv/README.md"}'),
    ToolCall(id="call_b", name="glob", arguments="{}"),
    ToolCall(id="call_c", name="bash", arguments='{"command":"echo \\"hé\\" > out.txt"}'),
)
FULL = Turn(reasoning=("Let me", " think."), text=("Hello", " world!"), tool_calls=CALLS)


def _deltas(chunks):
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]


def _calls_by_index(chunks):
    """Accumulate tool-call deltas the way an OpenAI client does."""
    calls: dict[int, dict] = {}
    for delta in _deltas(chunks):
        for piece in delta.get("tool_calls", ()):
            call = calls.setdefault(piece["index"], {"id": None, "name": None, "arguments": ""})
            call["id"] = piece.get("id", call["id"])
            call["name"] = piece.get("function", {}).get("name", call["name"])
            call["arguments"] += piece.get("function", {}).get("arguments", "")
    return calls


def test_role_chunk_comes_first():
    chunks = build_chunks(FULL, ENVELOPE)
    assert chunks[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    ]


def test_every_chunk_carries_the_envelope():
    for chunk in build_chunks(FULL, ENVELOPE):
        assert chunk["id"] == "chatcmpl-test"
        assert chunk["object"] == "chat.completion.chunk"
        assert (chunk["created"], chunk["model"]) == (1700000000, "mock-model")
        assert all(choice["index"] == 0 for choice in chunk["choices"])


def test_reasoning_then_text_deltas_verbatim():
    deltas = _deltas(build_chunks(FULL, ENVELOPE))
    reasoning = [d["reasoning_content"] for d in deltas if "reasoning_content" in d]
    text = [d["content"] for d in deltas[1:] if "content" in d]
    assert reasoning == ["Let me", " think."]
    assert text == ["Hello", " world!"]
    first_text = next(i for i, d in enumerate(deltas) if d.get("content"))
    last_reasoning = max(i for i, d in enumerate(deltas) if "reasoning_content" in d)
    assert last_reasoning < first_text


def test_tool_calls_use_indexes_in_order_with_a_head_chunk_each():
    deltas = _deltas(build_chunks(FULL, ENVELOPE))
    pieces = [piece for d in deltas for piece in d.get("tool_calls", ())]
    indexes = [piece["index"] for piece in pieces]
    assert indexes == sorted(indexes)
    assert sorted(set(indexes)) == [0, 1, 2]
    heads = [piece for piece in pieces if "id" in piece]
    assert heads == [
        {"index": i, "id": c.id, "type": "function", "function": {"name": c.name, "arguments": ""}}
        for i, c in enumerate(CALLS)
    ]


def test_arguments_split_across_chunks_rejoin_exactly():
    chunks = build_chunks(FULL, ENVELOPE)
    calls = _calls_by_index(chunks)
    assert [(c["id"], c["name"], c["arguments"]) for c in calls.values()] == [
        (c.id, c.name, c.arguments) for c in CALLS
    ]
    for index, call in enumerate(CALLS):
        argument_chunks = [
            piece
            for d in _deltas(chunks)
            for piece in d.get("tool_calls", ())
            if piece["index"] == index and "id" not in piece
        ]
        assert len(argument_chunks) >= 2, call.arguments
        assert json.loads(
            "".join(p["function"]["arguments"] for p in argument_chunks)
        ) == json.loads(call.arguments)


@pytest.mark.parametrize(
    "text",
    ["{}", '{"a":1}', '{"filePath":"/srv/fixture/proj/README.md"}', '{ "k" : "hé ☃" }', "x" * 1000],
)
def test_split_arguments_pieces_are_nonempty_and_rejoin(text):
    pieces = split_arguments(text)
    assert "".join(pieces) == text
    assert 2 <= len(pieces) <= 3
    assert all(pieces)


@pytest.mark.parametrize(
    ("turn", "reason"),
    [
        (Turn(text=("x",)), "stop"),
        (Turn(tool_calls=CALLS[:1]), "tool_calls"),
        (Turn(text=("x",), finish="length"), "length"),
        (Turn(tool_calls=CALLS[:1], finish="stop"), "stop"),
    ],
)
def test_finish_chunk_reason(turn, reason):
    chunks = build_chunks(turn, ENVELOPE)
    finish = chunks[-2]["choices"][0]
    assert finish == {"index": 0, "delta": {}, "finish_reason": reason}
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])


def test_usage_chunk_is_last_with_no_choices():
    turn = Turn(text=("x",), usage=Usage(prompt_tokens=50, completion_tokens=7))
    last = build_chunks(turn, ENVELOPE, prompt_tokens=999)[-1]
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57}


def test_usage_defaults_are_estimated_and_consistent():
    usage = usage_of(Turn(text=("a" * 40,)), prompt_tokens=12)
    assert usage == {"prompt_tokens": 12, "completion_tokens": 10, "total_tokens": 22}
    assert usage_of(Turn(faults=()), 0)["completion_tokens"] == 1


def test_chunk_list_never_contains_done():
    chunks = build_chunks(FULL, ENVELOPE)
    assert all(isinstance(chunk, dict) for chunk in chunks)
    assert DONE_EVENT == b"data: [DONE]\n\n"


def test_encode_event_round_trips():
    chunk = build_chunks(FULL, ENVELOPE)[2]
    event = encode_event(chunk)
    assert event.startswith(b"data: ")
    assert event.endswith(b"\n\n")
    assert b"\n" not in event[:-2]
    assert json.loads(event[len(b"data: ") : -2]) == chunk


def test_malformed_event_is_not_json():
    payload = MALFORMED_EVENT.removeprefix(b"data: ").strip()
    with pytest.raises(json.JSONDecodeError):
        json.loads(payload)


def test_build_completion_for_non_streamed_requests():
    completion = build_completion(FULL, ENVELOPE, prompt_tokens=3)
    assert completion["object"] == "chat.completion"
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert (message["role"], message["content"]) == ("assistant", "Hello world!")
    assert message["reasoning_content"] == "Let me think."
    assert [c["function"]["arguments"] for c in message["tool_calls"]] == [
        c.arguments for c in CALLS
    ]
    assert completion["usage"]["prompt_tokens"] == 3


@pytest.mark.parametrize(
    ("kind", "message", "expected"),
    [
        ("429", None, ("Rate limited by mock", "rate_limit_error")),
        ("500", "boom", ("boom", "server_error")),
        ("400", None, ("Bad request from mock", "invalid_request_error")),
    ],
)
def test_error_body_shape(kind, message, expected):
    error = error_body(kind, message)["error"]
    assert (error["message"], error["type"]) == expected
    assert isinstance(error["code"], str)


def test_an_estimate_cannot_fill_a_context_only_a_scripted_usage_can():
    huge = Turn(text=("x" * 1_000_000,))
    assert usage_of(huge)["completion_tokens"] == ESTIMATE_CAP
    scripted = Turn(text=("x" * 1_000_000,), usage=Usage(completion_tokens=250_000))
    assert usage_of(scripted)["completion_tokens"] == 250_000
