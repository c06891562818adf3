"""A scripted tool call fitted to the opencode line asking: scripts are written once, for
either line, and the mock calls each tool by the name and argument names the line in front of
it uses (opencode 1.x: `bash`, `task`, `filePath`, `subagent_type`, `skill`'s `name`; 2.x:
`shell`, `subagent`, `path`, `agent`, `skill`'s `id`; `../shared/opencode/PROTOCOL-2.md` §9).

The line is told from the whole request (2.x offers `shell` or `subagent`, or its `read` takes
`path`), not from the tool called: 2.x takes a denied tool out of the list, and a script's call
of a denied `bash` must still reach 2.x as the `shell` call it means. An argument is renamed
only where the other name is not there too. A request without tools changes nothing.

1.x's structured output is a `StructuredOutput` tool the model calls with the result; 2.x has
none, and the runner asks for the result as a closing ```json block instead
(`core/protocol/v2.py`). A scripted `StructuredOutput` call that a 2.x request does not offer
becomes that block at the end of the turn's text, so one script tests both lines.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from mock._model import ToolCall, Turn

# 1.x name -> 2.x name; arguments per tool ("*": every tool), 1.x -> 2.x.
_NAMES = {"bash": "shell", "task": "subagent"}
_ARGUMENTS = {"*": {"filePath": "path", "subagent_type": "agent"}, "skill": {"name": "id"}}
STRUCTURED = "StructuredOutput"  # 1.x's tool for `format: json_schema`


def offered_tools(body: Any) -> dict[str, frozenset[str]]:
    """The request's tools: each name with the argument names its schema declares."""
    tools = body.get("tools") if isinstance(body, dict) else None
    found: dict[str, frozenset[str]] = {}
    for tool in tools if isinstance(tools, list) else ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        schema = function.get("parameters")
        properties = schema.get("properties") if isinstance(schema, dict) else None
        found[function["name"]] = frozenset(properties if isinstance(properties, dict) else ())
    return found


def line_of(offered: dict[str, frozenset[str]]) -> int | None:
    """2 or 1, from the tools a request offers; None when they do not tell."""
    if {"shell", "subagent"} & offered.keys() or "path" in offered.get("read", ()):
        return 2
    if {"bash", "task"} & offered.keys() or "filePath" in offered.get("read", ()):
        return 1
    return None


def fitted(turn: Turn, body: Any) -> Turn:
    """`turn` with its tool calls fitted to the request's line (the same turn if none moved)."""
    if not turn.tool_calls:
        return turn
    offered = offered_tools(body)
    line = line_of(offered)
    if line is None:
        return turn
    if line == 2 and STRUCTURED not in offered:
        turn = _answered_in_text(turn)
    calls = tuple(_fit(call, line) for call in turn.tool_calls)
    return turn if calls == turn.tool_calls else dataclasses.replace(turn, tool_calls=calls)


def _answered_in_text(turn: Turn) -> Turn:
    """`turn` with its `StructuredOutput` calls as closing ```json blocks of its text."""
    answers = [call for call in turn.tool_calls if call.name == STRUCTURED]
    if not answers:
        return turn
    blocks = tuple(f"\n\n```json\n{call.arguments}\n```" for call in answers)
    calls = tuple(call for call in turn.tool_calls if call.name != STRUCTURED)
    finish = turn.finish if calls or turn.finish != "tool_calls" else None
    return dataclasses.replace(turn, text=(*turn.text, *blocks), tool_calls=calls, finish=finish)


def _fit(call: ToolCall, line: int) -> ToolCall:
    names = _NAMES if line == 2 else {two: one for one, two in _NAMES.items()}
    name = names.get(call.name, call.name)
    one = {v: k for k, v in _NAMES.items()}.get(name, name)  # its 1.x name
    renames = {**_ARGUMENTS["*"], **_ARGUMENTS.get(one, {})}
    if line == 1:
        renames = {two: one for one, two in renames.items()}
    arguments = call.arguments
    try:
        values = json.loads(arguments)
    except ValueError:
        values = None
    if isinstance(values, dict):
        moved = {
            (renames[key] if key in renames and renames[key] not in values else key): value
            for key, value in values.items()
        }
        if moved != values:
            arguments = json.dumps(moved)
    if name == call.name and arguments == call.arguments:
        return call
    return ToolCall(id=call.id, name=name, arguments=arguments)
