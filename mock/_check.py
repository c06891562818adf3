"""Small validators shared by both script formats; they raise `Invalid(path, problem)`.

The source file name is not known down here, so `parse_script` turns `Invalid` into a
`ScriptError` carrying it. Paths read like `turns[2].tool_calls[0].arguments`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from mock._model import ToolCall

_SHOWN_CHARS = 40


class Invalid(Exception):  # noqa: N818 - internal signal, re-raised as ScriptError
    """A value at `path` is wrong; `problem` says how."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path or "$"
        self.problem = problem


def fail(path: str, problem: str) -> NoReturn:
    """Raise `Invalid` for `path`."""
    raise Invalid(path, problem)


def at_key(path: str, key: str) -> str:
    """The path of `key` inside the object at `path`."""
    return f"{path}.{key}" if path else key


def at_index(path: str, index: int) -> str:
    """The path of item `index` inside the list at `path`."""
    return f"{path}[{index}]"


def shown(value: Any) -> str:
    """A short JSON rendering of a bad value for an error message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def expect_object(value: Any, path: str) -> Mapping[str, Any]:
    """The value as a mapping, or fail."""
    if not isinstance(value, Mapping):
        fail(path, f"expected an object, got {shown(value)}")
    return value


def check_keys(obj: Mapping[str, Any], path: str, allowed: Iterable[str]) -> None:
    """Fail on the first key that is not allowed (typos should not pass silently)."""
    allowed = sorted(allowed)
    for key in obj:
        if key not in allowed:
            fail(at_key(path, str(key)), f"unknown key (expected one of: {', '.join(allowed)})")


def require(obj: Mapping[str, Any], path: str, key: str) -> Any:
    """The value of a required key, or fail naming it."""
    if key not in obj:
        fail(at_key(path, key), "missing (required)")
    return obj[key]


def expect_str(value: Any, path: str, *, empty_ok: bool = True) -> str:
    """The value as a string, or fail."""
    if not isinstance(value, str) or (not empty_ok and not value):
        fail(path, f"expected a {'' if empty_ok else 'non-empty '}string, got {shown(value)}")
    return value


def expect_strs(value: Any, path: str) -> tuple[str, ...]:
    """A string or a list of strings, as a tuple of deltas."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        fail(path, f"expected a string or a list of strings, got {shown(value)}")
    return tuple(expect_str(item, at_index(path, i)) for i, item in enumerate(value))


def expect_number(value: Any, path: str) -> float:
    """A finite number >= 0 (seconds), or fail; booleans are not numbers here."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or value < 0:
        fail(path, f"expected a number >= 0, got {shown(value)}")
    return float(value)


def expect_int(value: Any, path: str, *, minimum: int = 0) -> int:
    """An integer >= minimum, or fail."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        fail(path, f"expected an integer >= {minimum}, got {shown(value)}")
    return value


def tool_arguments(value: Any, path: str) -> str:
    """Arguments as the exact JSON text to stream: an object, or a string encoding one."""
    if isinstance(value, Mapping):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if not isinstance(value, str):
        fail(path, f"expected an object or a JSON string, got {shown(value)}")
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError as exc:
        fail(path, f"not valid JSON ({exc.msg} at char {exc.pos}): {shown(value)}")
    if not isinstance(decoded, dict):
        fail(path, f"the JSON string must encode an object, got {shown(value)}")
    # Kept verbatim so the streamed pieces re-join to exactly what the script says.
    return value


_TOOL_KEYS = ("id", "name", "arguments")


def tool_call(raw: Any, path: str, *, default_id: str, extra_keys: Iterable[str] = ()) -> ToolCall:
    """One tool call object (`id`?, `name`, `arguments`?), validated."""
    obj = expect_object(raw, path)
    check_keys(obj, path, (*_TOOL_KEYS, *extra_keys))
    name = expect_str(require(obj, path, "name"), at_key(path, "name"), empty_ok=False)
    call_id = default_id
    if "id" in obj:
        call_id = expect_str(obj["id"], at_key(path, "id"), empty_ok=False)
    arguments = tool_arguments(obj.get("arguments", {}), at_key(path, "arguments"))
    return ToolCall(id=call_id, name=name, arguments=arguments)
