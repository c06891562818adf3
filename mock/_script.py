"""Loading and validating scripts (JSON or YAML, canonical or flat) into a `Script`.

Canonical format: `{"turns": [TURN, ...], "title"?: str, "subagents"?: [BRANCH, ...],
"strict"?: bool}` (strict: a request past the last turn is answered 400, not the last turn) or
a bare list of turns.
BRANCH keys: match (non-empty str), turns (list of TURN, validated like the main ones),
title (optional, ignored). A chat request whose first user message contains `match` (plain
substring) is a subagent conversation (opencode's `task` tool) and is answered from that
branch's turns by the same rules (turn index, last turn repeats, faults by attempt); the
first matching branch wins and requests matching none use the main turns.
TURN keys: text, reasoning (str or list of str: one delta each), tool_calls (list of
`{id?, name, arguments?}`; arguments an object or a JSON string encoding one; ids default to
`call_<turn>_<index>`), usage (`{prompt_tokens?, completion_tokens?}`), finish (str),
delay (seconds between chunks), a provider's pace (first_token: seconds before the first
chunk; tokens_per_second: a chunk's delay; jitter: each wait varies by up to that fraction),
faults (list of FAULT). A turn needs at least one of text,
reasoning, tool_calls or faults.
FAULT keys: kind (one of 429, 500, 400, stall, cut, drip, malformed), attempt (int >= 1, a
list of them, or "all"; default 1), and per kind: retry_after (seconds: `Retry-After`),
retry_after_ms (`retry-after-ms`), headers (more response headers, e.g. `x-ratelimit-*`)
and message (429/500/400),
after_chunks (stall: default 0; cut and malformed: default 1), delay (drip, required).
A list whose first item has a `type` is the flat CodeCome format (see `mock._flat`).
Every problem is a `ScriptError` reading `<source>: <path>: <problem>`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mock._check import (
    Invalid,
    at_index,
    at_key,
    check_keys,
    expect_int,
    expect_number,
    expect_object,
    expect_str,
    expect_strs,
    fail,
    require,
    shown,
    tool_call,
)
from mock._flat import is_flat, parse_flat
from mock._model import (
    DEFAULT_TITLE,
    ERROR_KINDS,
    FAULT_KINDS,
    Branch,
    Fault,
    Script,
    ScriptError,
    ToolCall,
    Turn,
    Usage,
)

_TURN_KEYS = (
    *("text", "reasoning", "tool_calls", "usage", "finish", "delay", "faults"),
    *("first_token", "tokens_per_second", "jitter"),
)
_FAULT_KEYS = {
    **dict.fromkeys(ERROR_KINDS, ("retry_after", "retry_after_ms", "headers", "message")),
    "stall": ("after_chunks",),
    "cut": ("after_chunks",),
    "malformed": ("after_chunks",),
    "drip": ("delay",),
}
# A cut or malformed chunk right after the role chunk is the interesting default; a stall
# right after the headers is what a hung upstream looks like.
_DEFAULT_AFTER_CHUNKS = {"stall": 0, "cut": 1, "malformed": 1}


def parse_script(data: Any, source: str = "<script>") -> Script:
    """Validate parsed JSON/YAML data (either format) into a `Script`."""
    try:
        return _script(data)
    except Invalid as exc:
        raise ScriptError(source, exc.path, exc.problem) from None


def load_script(path: str | Path) -> Script:
    """Read and validate a .json, .yaml or .yml script file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(source, "$", f"cannot read the file: {exc}") from None
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        return parse_script(_yaml(text, source), source)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ScriptError(source, where, f"invalid JSON: {exc.msg}") from None
    return parse_script(data, source)


def _yaml(text: str, source: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise ScriptError(source, "$", "YAML scripts need PyYAML (pip install pyyaml)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "$"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScriptError(source, where, f"invalid YAML: {problem}") from None


def _script(data: Any) -> Script:
    if isinstance(data, list):
        return Script(turns=_turns(data, ""))
    if not isinstance(data, Mapping):
        fail("", f'expected an object with "turns" or a list of turns, got {shown(data)}')
    check_keys(data, "", ("turns", "title", "subagents", "strict"))
    turns = _turns(require(data, "", "turns"), "turns")
    title = DEFAULT_TITLE
    if "title" in data:
        title = expect_str(data["title"], "title", empty_ok=False)
    subagents = _branches(data.get("subagents", []), "subagents")
    strict = data.get("strict", False)
    if not isinstance(strict, bool):
        fail("strict", f"expected true or false, got {shown(strict)}")
    return Script(turns=turns, title=title, subagents=subagents, strict=strict)


def _branches(value: Any, path: str) -> tuple[Branch, ...]:
    if not isinstance(value, list):
        fail(path, f"expected a list of subagent branches, got {shown(value)}")
    return tuple(_branch(raw, at_index(path, i)) for i, raw in enumerate(value))


def _branch(raw: Any, path: str) -> Branch:
    obj = expect_object(raw, path)
    check_keys(obj, path, ("match", "turns", "title"))
    match = expect_str(require(obj, path, "match"), at_key(path, "match"), empty_ok=False)
    turns = _turns(require(obj, path, "turns"), at_key(path, "turns"))
    return Branch(match=match, turns=turns)


def _turns(value: Any, path: str) -> tuple[Turn, ...]:
    if not isinstance(value, list):
        fail(path, f"expected a list of turns, got {shown(value)}")
    if not value:
        fail(path, "expected at least one turn, got []")
    if is_flat(value):
        return parse_flat(value, path)
    return tuple(_turn(raw, at_index(path, i), i) for i, raw in enumerate(value))


def _turn(raw: Any, path: str, index: int) -> Turn:
    obj = expect_object(raw, path)
    check_keys(obj, path, _TURN_KEYS)
    fields: dict[str, Any] = {}
    for key in ("text", "reasoning"):
        if key in obj:
            fields[key] = expect_strs(obj[key], at_key(path, key))
    if "tool_calls" in obj:
        fields["tool_calls"] = _tool_calls(obj["tool_calls"], at_key(path, "tool_calls"), index)
    if "usage" in obj:
        fields["usage"] = _usage(obj["usage"], at_key(path, "usage"))
    if "finish" in obj:
        fields["finish"] = expect_str(obj["finish"], at_key(path, "finish"), empty_ok=False)
    if "delay" in obj:
        fields["delay"] = expect_number(obj["delay"], at_key(path, "delay"))
    fields.update(_latency(obj, path))
    if "faults" in obj:
        fields["faults"] = _faults(obj["faults"], at_key(path, "faults"))
    if not any(fields.get(key) for key in ("text", "reasoning", "tool_calls", "faults")):
        fail(path, "a turn needs at least one of text, reasoning, tool_calls or faults")
    return Turn(**fields)


def _latency(obj: Mapping[str, Any], path: str) -> dict[str, float]:
    """A provider's pace: time to first token, tokens per second (a chunk's delay), jitter."""
    fields: dict[str, float] = {}
    if "first_token" in obj:
        fields["first_token"] = expect_number(obj["first_token"], at_key(path, "first_token"))
    if "tokens_per_second" in obj:
        rate = expect_number(obj["tokens_per_second"], at_key(path, "tokens_per_second"))
        if rate <= 0:
            fail(at_key(path, "tokens_per_second"), f"expected a positive number, got {rate:g}")
        fields["delay"] = 1.0 / rate
    if "jitter" in obj:
        jitter = expect_number(obj["jitter"], at_key(path, "jitter"))
        if not 0 <= jitter <= 1:
            fail(at_key(path, "jitter"), f"expected a fraction from 0 to 1, got {jitter:g}")
        fields["jitter"] = jitter
    return fields


def _tool_calls(value: Any, path: str, turn_index: int) -> tuple[ToolCall, ...]:
    if not isinstance(value, list):
        fail(path, f"expected a list of tool calls, got {shown(value)}")
    return tuple(
        tool_call(raw, at_index(path, i), default_id=f"call_{turn_index}_{i}")
        for i, raw in enumerate(value)
    )


def _usage(value: Any, path: str) -> Usage:
    obj = expect_object(value, path)
    check_keys(obj, path, ("prompt_tokens", "completion_tokens"))
    counts = {key: expect_int(obj[key], at_key(path, key)) for key in obj}
    return Usage(**counts)


def _faults(value: Any, path: str) -> tuple[Fault, ...]:
    if not isinstance(value, list):
        fail(path, f"expected a list of faults, got {shown(value)}")
    return tuple(_fault(raw, at_index(path, i)) for i, raw in enumerate(value))


def _fault(raw: Any, path: str) -> Fault:
    obj = expect_object(raw, path)
    kind = _fault_kind(require(obj, path, "kind"), at_key(path, "kind"))
    check_keys(obj, path, ("kind", "attempt", *_FAULT_KEYS[kind]))
    fields: dict[str, Any] = {"kind": kind, "attempts": frozenset({1})}
    if "attempt" in obj:
        fields["attempts"] = _attempts(obj["attempt"], at_key(path, "attempt"))
    if "retry_after" in obj:
        fields["retry_after"] = expect_number(obj["retry_after"], at_key(path, "retry_after"))
    if "retry_after_ms" in obj:
        where = at_key(path, "retry_after_ms")
        fields["retry_after_ms"] = expect_number(obj["retry_after_ms"], where)
    if "headers" in obj:
        headers = expect_object(obj["headers"], at_key(path, "headers"))
        fields["headers"] = tuple(
            (str(name), expect_str(value, at_key(at_key(path, "headers"), name), empty_ok=True))
            for name, value in headers.items()
        )
    if "message" in obj:
        fields["message"] = expect_str(obj["message"], at_key(path, "message"), empty_ok=False)
    if kind in _DEFAULT_AFTER_CHUNKS:
        after = obj.get("after_chunks", _DEFAULT_AFTER_CHUNKS[kind])
        fields["after_chunks"] = expect_int(after, at_key(path, "after_chunks"))
    if kind == "drip":
        fields["delay"] = expect_number(require(obj, path, "delay"), at_key(path, "delay"))
    return Fault(**fields)


def _fault_kind(value: Any, path: str) -> str:
    # YAML reads `kind: 429` as an integer; the status codes are accepted either way.
    kind = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if kind not in FAULT_KINDS:
        fail(path, f"expected one of {', '.join(FAULT_KINDS)}, got {shown(value)}")
    return kind


def _attempts(value: Any, path: str) -> frozenset[int] | None:
    if value == "all":
        return None
    if isinstance(value, list) and value:
        return frozenset(expect_int(v, at_index(path, i), minimum=1) for i, v in enumerate(value))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        fail(
            path,
            f'expected an integer >= 1, a non-empty list of them, or "all", got {shown(value)}',
        )
    return frozenset({value})
