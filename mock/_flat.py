"""The flat "CodeCome" script format: a list of actions folded into turns.

Public definition: pruiz/CodeCome `tools/mock_llm_server.py` and `tools/mock-llm-scripts/*.json`:
`{"type": "text", "content": "..."}`, `{"type": "tool_call", "id", "name", "arguments"}`,
`{"type": "done"}`. A turn is the leading text plus all consecutive tool calls after it.

Accepted here:
- `text` (alias `text_delta`) and `reasoning` (alias `reasoning_delta`) take their string in
  `content` (CodeCome's key) or `text`; consecutive items become separate deltas of one turn.
- `tool_call` (`id`?, `name`, `arguments`? as an object or a JSON string) joins the current
  turn; a text or reasoning item after tool calls starts the next turn.
- `done` ends the current turn (no-op if it is empty).
Differences from CodeCome's server, on purpose: `done` does not stop parsing (later items
form further turns) and is not served as an extra empty turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mock._check import (
    at_index,
    at_key,
    check_keys,
    expect_object,
    expect_str,
    fail,
    shown,
    tool_call,
)
from mock._model import ToolCall, Turn

_DELTA_TYPES = {
    "text": "text",
    "text_delta": "text",
    "reasoning": "reasoning",
    "reasoning_delta": "reasoning",
}
_TYPES = (*_DELTA_TYPES, "tool_call", "done")


def is_flat(items: list[Any]) -> bool:
    """A list is in the flat format when its first item is an object with a `type`."""
    return bool(items) and isinstance(items[0], Mapping) and "type" in items[0]


class _Turns:
    """Accumulates deltas and calls until a boundary, then closes a `Turn`."""

    def __init__(self) -> None:
        self.done: list[Turn] = []
        self.deltas: dict[str, list[str]] = {"text": [], "reasoning": []}
        self.calls: list[ToolCall] = []

    def close(self) -> None:
        """End the current turn (if it has anything) and start an empty one."""
        if self.deltas["text"] or self.deltas["reasoning"] or self.calls:
            turn = Turn(
                text=tuple(self.deltas["text"]),
                reasoning=tuple(self.deltas["reasoning"]),
                tool_calls=tuple(self.calls),
            )
            self.done.append(turn)
        self.deltas = {"text": [], "reasoning": []}
        self.calls = []


def parse_flat(items: list[Any], path: str) -> tuple[Turn, ...]:
    """The turns of a flat action list (`path` is where the list sits, for errors)."""
    turns = _Turns()
    for index, raw in enumerate(items):
        item_path = at_index(path, index)
        obj = expect_object(raw, item_path)
        kind = _item_type(obj, item_path)
        if kind in _DELTA_TYPES:
            if turns.calls:  # tool calls end a turn: this delta opens the next one
                turns.close()
            check_keys(obj, item_path, ("type", "content", "text"))
            turns.deltas[_DELTA_TYPES[kind]].append(_item_text(obj, item_path))
        elif kind == "tool_call":
            default_id = f"call_{len(turns.done)}_{len(turns.calls)}"
            call = tool_call(obj, item_path, default_id=default_id, extra_keys=("type",))
            turns.calls.append(call)
        else:
            check_keys(obj, item_path, ("type",))
            turns.close()
    turns.close()
    if not turns.done:
        fail(path, "a flat script needs at least one text, reasoning or tool_call item")
    return tuple(turns.done)


def _item_type(obj: Mapping[str, Any], path: str) -> str:
    if "type" not in obj:
        fail(at_key(path, "type"), "missing (required in the flat format)")
    kind = obj["type"]
    if kind not in _TYPES:
        fail(at_key(path, "type"), f"expected one of {', '.join(_TYPES)}, got {shown(kind)}")
    return kind


def _item_text(obj: Mapping[str, Any], path: str) -> str:
    keys = [key for key in ("content", "text") if key in obj]
    if len(keys) != 1:
        problem = "missing (required)" if not keys else 'give "content" or "text", not both'
        fail(at_key(path, "content"), problem)
    return expect_str(obj[keys[0]], at_key(path, keys[0]))
