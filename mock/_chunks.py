"""Pure payload building: a turn becomes chunk dicts, a completion dict, or SSE bytes.

Streamed order (what opencode's `@ai-sdk/openai-compatible` accepts, PROTOCOL.md §0):
1. a role chunk `{"role": "assistant", "content": ""}`;
2. one `reasoning_content` delta per reasoning piece, then one `content` delta per text piece;
3. per tool call `i`: a head chunk carrying `index: i`, `id`, `type` and `function.name` with
   empty arguments, then the arguments text split into 2-3 pieces (`function.arguments` only),
   so clients must accumulate them as real providers require;
4. a finish chunk (empty delta, `finish_reason`);
5. a usage chunk (`choices: []`).
The wire layer (`encode_event`, `DONE_EVENT`) frames them; nothing here does IO or reads
the clock: ids and timestamps come in through `Envelope`.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from mock._model import ToolCall, Turn

ARGUMENT_PIECES = 3
DONE_EVENT = b"data: [DONE]\n\n"
# Deliberately broken JSON: the fault "malformed" sends it between two good chunks.
MALFORMED_EVENT = b"data: {not json\n\n"

_ERRORS = {
    "429": ("Rate limited by mock", "rate_limit_error", "rate_limit_exceeded"),
    "500": ("Internal error from mock", "server_error", "internal_error"),
    "400": ("Bad request from mock", "invalid_request_error", "bad_request"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """What every chunk of one response shares: completion id, creation time, model."""

    id: str
    created: int
    model: str = "mock-model"


def split_arguments(text: str, pieces: int = ARGUMENT_PIECES) -> tuple[str, ...]:
    """Cut text into up to `pieces` consecutive non-empty parts (two or more if it can)."""
    count = max(1, min(pieces, len(text)))
    bounds = [len(text) * k // count for k in range(count + 1)]
    return tuple(text[start:end] for start, end in itertools.pairwise(bounds))


# An estimate never passes this: only a script's own `usage` can fill opencode's context and
# make it compact (a 1 MB turn once did, and the mock, asked again, repeated it until timeout).
ESTIMATE_CAP = 2000


def estimate(chars: int) -> int:
    """About 4 characters a token, at least 1, at most `ESTIMATE_CAP`."""
    return min(ESTIMATE_CAP, max(1, (chars + 3) // 4))


def usage_of(turn: Turn, prompt_tokens: int = 0) -> dict[str, int]:
    """The usage block: the turn's own counts, else an estimate (`estimate`)."""
    chars = sum(map(len, turn.text + turn.reasoning))
    chars += sum(len(call.name) + len(call.arguments) for call in turn.tool_calls)
    prompt = turn.usage.prompt_tokens
    prompt = prompt_tokens if prompt is None else prompt
    completion = turn.usage.completion_tokens
    completion = estimate(chars) if completion is None else completion
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def build_chunks(turn: Turn, envelope: Envelope, *, prompt_tokens: int = 0) -> list[dict]:
    """Every chunk of a streamed answer to `turn`, in order, without the `[DONE]` marker."""
    chunks = [_chunk(envelope, {"role": "assistant", "content": ""})]
    chunks += [_chunk(envelope, {"reasoning_content": piece}) for piece in turn.reasoning]
    chunks += [_chunk(envelope, {"content": piece}) for piece in turn.text]
    for index, call in enumerate(turn.tool_calls):
        chunks += _tool_call_chunks(envelope, index, call)
    chunks.append(_chunk(envelope, {}, turn.finish_reason))
    chunks.append({**_head(envelope), "choices": [], "usage": usage_of(turn, prompt_tokens)})
    return chunks


def build_completion(turn: Turn, envelope: Envelope, *, prompt_tokens: int = 0) -> dict:
    """The non-streamed `chat.completion` answer to `turn`."""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(turn.text) or None}
    if turn.reasoning:
        message["reasoning_content"] = "".join(turn.reasoning)
    if turn.tool_calls:
        message["tool_calls"] = [_full_call(call) for call in turn.tool_calls]
    choice = {"index": 0, "message": message, "finish_reason": turn.finish_reason}
    return {
        **_head(envelope, "chat.completion"),
        "choices": [choice],
        "usage": usage_of(turn, prompt_tokens),
    }


def error_body(kind: str, message: str | None = None) -> dict:
    """The OpenAI-style error body for a 429/500/400 fault (opencode shows `message`)."""
    default_message, error_type, code = _ERRORS[kind]
    return {"error": {"message": message or default_message, "type": error_type, "code": code}}


def encode_event(chunk: dict) -> bytes:
    """One SSE event carrying a chunk: `data: <json>` and a blank line."""
    text = json.dumps(chunk, ensure_ascii=False, separators=(",", ":"))
    return b"data: " + text.encode("utf-8") + b"\n\n"


def _head(envelope: Envelope, kind: str = "chat.completion.chunk") -> dict:
    return {
        "id": envelope.id,
        "object": kind,
        "created": envelope.created,
        "model": envelope.model,
    }


def _chunk(envelope: Envelope, delta: dict, finish: str | None = None) -> dict:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {**_head(envelope), "choices": [choice]}


def _tool_call_chunks(envelope: Envelope, index: int, call: ToolCall) -> list[dict]:
    head = {
        "index": index,
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": ""},
    }
    chunks = [_chunk(envelope, {"tool_calls": [head]})]
    for piece in split_arguments(call.arguments):
        delta = {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
        chunks.append(_chunk(envelope, delta))
    return chunks


def _full_call(call: ToolCall) -> dict:
    function = {"name": call.name, "arguments": call.arguments}
    return {"id": call.id, "type": "function", "function": function}
