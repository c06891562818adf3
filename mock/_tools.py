"""A scripted tool call fitted to the tools the request offers: scripts are written once, for
either opencode line, and the mock calls each tool by the name and argument names the line in
front of it uses (opencode 1.x: `bash`, `task`, `filePath`, `subagent_type`; 2.x: `shell`,
`subagent`, `path`, `agent`; `../shared/opencode/PROTOCOL-2.md` §9).

A call whose tool the request offers under its scripted name is sent as written; one whose
counterpart is offered is renamed, and each argument the offered tool does not declare but
whose counterpart it does is renamed too. A request without tools changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from mock._model import ToolCall, Turn

_NAMES = {"bash": "shell", "task": "subagent"}
_ARGUMENTS = {"filePath": "path", "subagent_type": "agent"}
OTHER_NAME = {**_NAMES, **{two: one for one, two in _NAMES.items()}}
OTHER_ARGUMENT = {**_ARGUMENTS, **{two: one for one, two in _ARGUMENTS.items()}}


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


def fitted(turn: Turn, body: Any) -> Turn:
    """`turn` with its tool calls fitted to the request's tools (the same turn if none moved)."""
    if not turn.tool_calls:
        return turn
    offered = offered_tools(body)
    if not offered:
        return turn
    calls = tuple(_fit(call, offered) for call in turn.tool_calls)
    return turn if calls == turn.tool_calls else dataclasses.replace(turn, tool_calls=calls)


def _fit(call: ToolCall, offered: dict[str, frozenset[str]]) -> ToolCall:
    name = call.name
    if name not in offered and OTHER_NAME.get(name) in offered:
        name = OTHER_NAME[name]
    declared = offered.get(name)
    arguments = call.arguments
    try:
        values = json.loads(arguments)
    except ValueError:
        values = None
    if declared and isinstance(values, dict):
        renamed = {_argument(key, declared): value for key, value in values.items()}
        if renamed != values:
            arguments = json.dumps(renamed)
    if name == call.name and arguments == call.arguments:
        return call
    return ToolCall(id=call.id, name=name, arguments=arguments)


def _argument(key: str, declared: frozenset[str]) -> str:
    other = OTHER_ARGUMENT.get(key)
    return other if key not in declared and other in declared else key
