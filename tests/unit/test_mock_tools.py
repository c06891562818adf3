"""The mock fits a scripted tool call to the tools the request offers (`mock._tools`): one
script serves opencode 1.x and 2.x."""

from __future__ import annotations

import json

import pytest

from mock._model import ToolCall, Turn
from mock._tools import fitted

pytestmark = pytest.mark.timeout(10)


def offered(tools: dict[str, list[str]]) -> dict:
    """A chat request offering `tools`, each with the argument names it declares."""
    return {
        "tools": [
            {
                "type": "function",
                "function": {"name": name, "parameters": {"properties": {key: {} for key in args}}},
            }
            for name, args in tools.items()
        ]
    }


def call(tool: str, /, **arguments) -> ToolCall:
    return ToolCall(id="call_1", name=tool, arguments=json.dumps(arguments))


V1 = offered(
    {
        "bash": ["command", "description"],
        "read": ["filePath"],
        "task": ["description", "prompt", "subagent_type"],
    }
)
V2 = offered(
    {
        "shell": ["command", "workdir"],
        "read": ["path"],
        "subagent": ["agent", "description", "prompt"],
    }
)


@pytest.mark.parametrize(
    ("scripted", "body", "expected"),
    [
        (call("bash", command="ls"), V2, call("shell", command="ls")),
        (call("read", filePath="a.md"), V2, call("read", path="a.md")),
        (
            call("task", description="d", prompt="p", subagent_type="general"),
            V2,
            call("subagent", description="d", prompt="p", agent="general"),
        ),
        (call("shell", command="ls"), V1, call("bash", command="ls")),
        (call("read", path="a.md"), V1, call("read", filePath="a.md")),
        (call("read", filePath="a.md"), V1, call("read", filePath="a.md")),  # as written
        (
            call("bash", command="ls", description="x"),
            V2,
            call("shell", command="ls", description="x"),
        ),
        (call("webfetch", url="u"), V2, call("webfetch", url="u")),  # offered by neither: as is
    ],
)
def test_a_scripted_call_takes_the_names_of_the_line_asking(scripted, body, expected):
    (got,) = fitted(Turn(tool_calls=(scripted,)), body).tool_calls
    assert (got.name, json.loads(got.arguments)) == (expected.name, json.loads(expected.arguments))


def test_a_turn_whose_calls_fit_already_or_a_request_without_tools_is_the_same_turn():
    turn = Turn(tool_calls=(call("read", filePath="a.md"),))
    assert fitted(turn, V1) is turn
    assert fitted(turn, {"messages": []}) is turn


def test_the_line_is_told_from_the_whole_request_so_a_denied_tool_keeps_its_meaning():
    without_shell = offered({"read": ["path"], "write": ["path", "content"]})  # bash denied
    (got,) = fitted(Turn(tool_calls=(call("bash", command="ls"),)), without_shell).tool_calls
    assert got.name == "shell"


def test_an_argument_is_not_renamed_onto_one_that_is_there_and_skill_takes_its_own_name():
    (both,) = fitted(Turn(tool_calls=(call("read", filePath="a", path="b"),)), V2).tool_calls
    assert json.loads(both.arguments) == {"filePath": "a", "path": "b"}
    (skill,) = fitted(Turn(tool_calls=(call("skill", name="x"),)), V2).tool_calls
    assert json.loads(skill.arguments) == {"id": "x"}


def test_a_structured_output_call_is_a_closing_json_block_on_2_x_and_a_call_on_1_x():
    answer = call("StructuredOutput", answer=42)
    turn = Turn(text=("Done.",), tool_calls=(answer,))
    on_two = fitted(turn, V2)
    assert on_two.tool_calls == ()
    assert on_two.text == ("Done.", '\n\n```json\n{"answer": 42}\n```')
    assert on_two.finish_reason == "stop"
    structured_v1 = offered({"bash": ["command"], "StructuredOutput": ["answer"]})
    assert fitted(turn, structured_v1) == turn
