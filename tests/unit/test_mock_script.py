"""Script parsing (canonical and flat formats), validation messages, fault and turn selection."""

from __future__ import annotations

import json

import pytest

# UP026 takes `mock` for the old unittest.mock backport; this is the project's own package.
from mock import (
    Branch,
    Fault,
    Script,
    ScriptError,
    ToolCall,
    Turn,
    Usage,
    load_script,
    parse_script,
)
from mock import select_fault as pick
from mock._dispatch import Dispatcher, classify, first_user_text, turn_index
from tests.helpers import CAPTURES

pytestmark = pytest.mark.timeout(30)

READ_ARGS = {"filePath": "/srv/fixture/proj/README.md"}


# --- canonical format -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            {"turns": [{"text": ["Hello", " world!"]}]},
            Script(turns=(Turn(text=("Hello", " world!")),)),
            id="text-list",
        ),
        pytest.param(
            [{"text": "Hi"}, {"reasoning": "hm", "text": "ok"}],
            Script(turns=(Turn(text=("Hi",)), Turn(reasoning=("hm",), text=("ok",)))),
            id="bare-list",
        ),
        pytest.param(
            {"turns": [{"tool_calls": [{"name": "read", "arguments": READ_ARGS}]}], "title": "T"},
            Script(
                turns=(
                    Turn(
                        tool_calls=(
                            ToolCall(
                                id="call_0_0",
                                name="read",
                                arguments='{"filePath":"/srv/fixture/proj/README.md"}',
                            ),
                        )
                    ),
                ),
                title="T",
            ),
            id="tool-call-default-id-and-title",
        ),
        pytest.param(
            [{"text": "a"}, {"tool_calls": [{"id": "x", "name": "n", "arguments": '{ "a" : 1 }'}]}],
            Script(
                turns=(
                    Turn(text=("a",)),
                    Turn(tool_calls=(ToolCall(id="x", name="n", arguments='{ "a" : 1 }'),)),
                )
            ),
            id="json-string-arguments-kept-verbatim",
        ),
        pytest.param(
            [{"text": "t", "usage": {"prompt_tokens": 5}, "finish": "length", "delay": 0.5}],
            Script(
                turns=(Turn(text=("t",), usage=Usage(prompt_tokens=5), finish="length", delay=0.5),)
            ),
            id="usage-finish-delay",
        ),
        pytest.param(
            [{"faults": [{"kind": 429, "retry_after": 1}, {"kind": "cut", "attempt": [2, 3]}]}],
            Script(
                turns=(
                    Turn(
                        faults=(
                            Fault(kind="429", attempts=frozenset({1}), retry_after=1.0),
                            Fault(kind="cut", attempts=frozenset({2, 3}), after_chunks=1),
                        )
                    ),
                )
            ),
            id="faults-defaults",
        ),
        pytest.param(
            [{"text": "x", "faults": [{"kind": "drip", "attempt": "all", "delay": 0.1}]}],
            Script(
                turns=(Turn(text=("x",), faults=(Fault(kind="drip", attempts=None, delay=0.1),)),)
            ),
            id="drip-every-attempt",
        ),
        pytest.param(
            [{"text": "x", "faults": [{"kind": "stall"}]}],
            Script(
                turns=(Turn(text=("x",), faults=(Fault(kind="stall", attempts=frozenset({1})),)),)
            ),
            id="stall-after-headers",
        ),
    ],
)
def test_parse_canonical_script(data, expected):
    assert parse_script(data) == expected


def test_parse_subagent_branches():
    data = {
        "turns": [{"tool_calls": [{"name": "task", "arguments": {"prompt": "Explore"}}]}],
        "subagents": [
            {
                "match": "Explore",
                "title": "explorer (ignored)",
                "turns": [{"tool_calls": [{"name": "read"}]}, {"text": "Found it."}],
            },
            {"match": "Review", "turns": [{"type": "text", "content": "flat is fine"}]},
        ],
    }
    script = parse_script(data)
    assert script.subagents == (
        Branch(
            match="Explore",
            turns=(Turn(tool_calls=(_call("call_0_0"),)), Turn(text=("Found it.",))),
        ),
        Branch(match="Review", turns=(Turn(text=("flat is fine",)),)),
    )
    assert script.turns[0].tool_calls[0].name == "task"
    assert parse_script([{"text": "a"}]).subagents == ()
    assert parse_script({"turns": [{"text": "a"}], "subagents": []}).subagents == ()


def test_branch_for_picks_the_first_matching_branch():
    script = parse_script(
        {
            "turns": [{"text": "main"}],
            "subagents": [
                {"match": "Explore", "turns": [{"text": "a"}]},
                {"match": "Explore the", "turns": [{"text": "b"}]},
                {"match": "Review", "turns": [{"text": "c"}, {"text": "d"}]},
            ],
        }
    )
    first, _, review = script.subagents
    assert script.branch_for("Please Explore the repo") == (0, first)
    assert script.branch_for("Review it") == (2, review)
    assert script.branch_for("explore (wrong case)") is None
    assert [review.turn_at(i).text for i in range(3)] == [("c",), ("d",), ("d",)]


# --- flat CodeCome format ---------------------------------------------------------------------


def _call(call_id, name="read", arguments="{}"):
    return ToolCall(id=call_id, name=name, arguments=arguments)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        pytest.param(
            [{"type": "text", "content": "Hello "}, {"type": "text", "content": "world!"}],
            (Turn(text=("Hello ", "world!")),),
            id="consecutive-text-one-turn",
        ),
        pytest.param(
            [
                {"type": "text", "content": "I'll read files."},
                {"type": "tool_call", "id": "call_1", "name": "read", "arguments": {}},
                {"type": "tool_call", "id": "call_2", "name": "read", "arguments": {}},
                {"type": "text", "text": "Done!"},
                {"type": "done"},
            ],
            (
                Turn(text=("I'll read files.",), tool_calls=(_call("call_1"), _call("call_2"))),
                Turn(text=("Done!",)),
            ),
            id="codecome-multi-tool-turn",
        ),
        pytest.param(
            [
                {"type": "text", "content": "first"},
                {"type": "done"},
                {"type": "reasoning", "content": "hm"},
                {"type": "tool_call", "name": "read"},
                {"type": "done"},
                {"type": "done"},
            ],
            (Turn(text=("first",)), Turn(reasoning=("hm",), tool_calls=(_call("call_1_0"),))),
            id="done-ends-turn-and-parsing-goes-on",
        ),
        pytest.param(
            [{"type": "tool_call", "name": "a"}, {"type": "text_delta", "content": "after"}],
            (Turn(tool_calls=(_call("call_0_0", "a"),)), Turn(text=("after",))),
            id="text-after-tools-starts-next-turn",
        ),
    ],
)
def test_parse_flat_script(items, expected):
    assert parse_script(items).turns == expected


def test_flat_items_inside_turns_object_keep_the_title():
    script = parse_script({"title": "Flat", "turns": [{"type": "text", "content": "hi"}]})
    assert script == Script(turns=(Turn(text=("hi",)),), title="Flat")


# --- bad scripts: one line naming the item and the field --------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            {
                "turns": [
                    {"text": "a"},
                    {"text": "b"},
                    {"tool_calls": [{"name": "r", "arguments": 5}]},
                ]
            },
            "s.json: turns[2].tool_calls[0].arguments: expected an object or a JSON string, got 5",
            id="bad-arguments-type",
        ),
        pytest.param(
            [{"tool_calls": [{"name": "r", "arguments": "{oops"}]}],
            "s.json: [0].tool_calls[0].arguments: not valid JSON",
            id="bad-arguments-json",
        ),
        pytest.param(
            [{"tool_calls": [{"name": "r", "arguments": "[1, 2]"}]}],
            "s.json: [0].tool_calls[0].arguments: the JSON string must encode an object",
            id="arguments-not-object",
        ),
        pytest.param(
            {"turns": [{"text": "a", "colour": "red"}]},
            "s.json: turns[0].colour: unknown key (expected one of: delay, faults, finish,",
            id="unknown-turn-key",
        ),
        pytest.param(
            {"turns": [{"text": "a"}], "model": "x"},
            "s.json: model: unknown key (expected one of: strict, subagents, title, turns)",
            id="unknown-top-key",
        ),
        pytest.param(
            [{"text": 3}],
            "s.json: [0].text: expected a string or a list of strings, got 3",
            id="text-type",
        ),
        pytest.param(
            [{"text": ["a", None]}],
            "s.json: [0].text[1]: expected a string, got null",
            id="text-item",
        ),
        pytest.param(
            [{"text": "a"}, {}],
            "s.json: [1]: a turn needs at least one of text, reasoning, tool_calls or faults",
            id="empty-turn",
        ),
        pytest.param(
            [{"text": "a", "faults": [{"kind": "teapot"}]}],
            "s.json: [0].faults[0].kind: expected one of 429, 500, 400, stall, cut, drip,"
            ' malformed, got "teapot"',
            id="bad-fault-kind",
        ),
        pytest.param(
            [{"text": "a", "faults": [{"kind": "429", "attempt": 0}]}],
            "s.json: [0].faults[0].attempt: expected an integer >= 1, a non-empty list of them,"
            ' or "all", got 0',
            id="attempt-zero",
        ),
        pytest.param(
            [{"text": "a", "faults": [{"kind": "429", "attempt": [1, 0]}]}],
            "s.json: [0].faults[0].attempt[1]: expected an integer >= 1, got 0",
            id="attempt-list-zero",
        ),
        pytest.param(
            [{"text": "a", "faults": [{"kind": "stall", "delay": 1}]}],
            "s.json: [0].faults[0].delay: unknown key"
            " (expected one of: after_chunks, attempt, kind)",
            id="key-of-another-fault-kind",
        ),
        pytest.param(
            [{"text": "a", "faults": [{"kind": "drip"}]}],
            "s.json: [0].faults[0].delay: missing (required)",
            id="drip-without-delay",
        ),
        pytest.param(
            [{"text": "a", "delay": -1}],
            "s.json: [0].delay: expected a number >= 0, got -1",
            id="delay",
        ),
        pytest.param(
            [{"text": "a", "usage": {"prompt_tokens": "5"}}],
            's.json: [0].usage.prompt_tokens: expected an integer >= 0, got "5"',
            id="usage-type",
        ),
        pytest.param(
            [{"tool_calls": [{"arguments": {}}]}],
            "s.json: [0].tool_calls[0].name: missing (required)",
            id="tool-without-name",
        ),
        pytest.param(
            {"turns": []}, "s.json: turns: expected at least one turn, got []", id="no-turns"
        ),
        pytest.param(
            "hello",
            's.json: $: expected an object with "turns" or a list of turns, got "hello"',
            id="root",
        ),
        pytest.param(
            {"turns": [{"text": "a"}], "subagents": [{"match": 3, "turns": [{"text": "b"}]}]},
            "s.json: subagents[0].match: expected a non-empty string, got 3",
            id="branch-match-type",
        ),
        pytest.param(
            {"turns": [{"text": "a"}], "subagents": [{"match": "", "turns": [{"text": "b"}]}]},
            's.json: subagents[0].match: expected a non-empty string, got ""',
            id="branch-match-empty",
        ),
        pytest.param(
            {"turns": [{"text": "a"}], "subagents": [{"turns": [{"text": "b"}]}]},
            "s.json: subagents[0].match: missing (required)",
            id="branch-without-match",
        ),
        pytest.param(
            {"turns": [{"text": "a"}], "subagents": [{"match": "x"}]},
            "s.json: subagents[0].turns: missing (required)",
            id="branch-without-turns",
        ),
        pytest.param(
            {"turns": [{"text": "a"}], "subagents": [{"match": "x", "turns": []}]},
            "s.json: subagents[0].turns: expected at least one turn, got []",
            id="branch-no-turns",
        ),
        pytest.param(
            {
                "turns": [{"text": "a"}],
                "subagents": [
                    {"match": "x", "turns": [{"text": "b"}]},
                    {"match": "y", "turns": [{"text": "c"}, {"text": 5}]},
                ],
            },
            "s.json: subagents[1].turns[1].text: expected a string or a list of strings, got 5",
            id="branch-bad-turn",
        ),
        pytest.param(
            {
                "turns": [{"text": "a"}],
                "subagents": [{"match": "x", "turns": [{"text": "b"}], "agent": "e"}],
            },
            "s.json: subagents[0].agent: unknown key (expected one of: match, title, turns)",
            id="branch-unknown-key",
        ),
        pytest.param(
            {"turns": [{"text": "a"}], "subagents": {"match": "x"}},
            's.json: subagents: expected a list of subagent branches, got {"match": "x"}',
            id="subagents-not-a-list",
        ),
        pytest.param(
            {"turns": [{"text": "a"}], "subagents": ["x"]},
            's.json: subagents[0]: expected an object, got "x"',
            id="branch-not-an-object",
        ),
        pytest.param(
            [{"type": "text", "content": "a"}, {"type": "tool_call", "name": "r", "arguments": 7}],
            "s.json: [1].arguments: expected an object or a JSON string, got 7",
            id="flat-bad-arguments",
        ),
        pytest.param(
            [{"type": "text", "content": "a"}, {"type": "image"}],
            "s.json: [1].type: expected one of text, text_delta, reasoning, reasoning_delta,"
            ' tool_call, done, got "image"',
            id="flat-bad-type",
        ),
        pytest.param(
            [{"type": "text", "content": "a"}, {"content": "b"}],
            "s.json: [1].type: missing (required in the flat format)",
            id="flat-missing-type",
        ),
        pytest.param(
            [{"type": "done", "content": "x"}],
            "s.json: [0].content: unknown key (expected one of: type)",
            id="flat-unknown-key",
        ),
        pytest.param(
            [{"type": "text"}], "s.json: [0].content: missing (required)", id="flat-text-missing"
        ),
    ],
)
def test_bad_script_names_item_and_field_in_one_line(data, message):
    with pytest.raises(ScriptError) as caught:
        parse_script(data, source="s.json")
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text
    assert isinstance(caught.value, ValueError)


def test_script_error_exposes_its_parts():
    with pytest.raises(ScriptError) as caught:
        parse_script([{"finish": ""}], source="x.yaml")
    assert (caught.value.source, caught.value.path) == ("x.yaml", "[0].finish")


# --- files ------------------------------------------------------------------------------------


def test_load_json_and_yaml_scripts_agree(tmp_path):
    data = {"title": "T", "turns": [{"text": ["a", "b"], "faults": [{"kind": 500}]}]}
    json_path = tmp_path / "s.json"
    json_path.write_text(json.dumps(data))
    yaml_path = tmp_path / "s.yaml"
    yaml_path.write_text("title: T\nturns:\n  - text: [a, b]\n    faults:\n      - kind: 500\n")
    assert load_script(json_path) == load_script(yaml_path) == parse_script(data)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", '{"turns": [\n  {"text": "a",}\n]}', "line 2 column 16: invalid JSON"),
        ("bad.yml", "turns: [\n", "invalid YAML"),
        ("shape.json", '{"turns": [{"txt": "a"}]}', "turns[0].txt: unknown key"),
    ],
)
def test_load_script_reports_file_and_location(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ScriptError, match=r"^" + str(path).replace("\\", "\\\\") + ": ") as caught:
        load_script(path)
    assert message in str(caught.value)


def test_load_missing_file_is_a_script_error(tmp_path):
    with pytest.raises(ScriptError, match=r"cannot read the file"):
        load_script(tmp_path / "absent.json")


# --- fault and turn selection (pure) ----------------------------------------------------------

FIRST = Fault(kind="429", attempts=frozenset({1}))
SECOND_THIRD = Fault(kind="500", attempts=frozenset({2, 3}))
ALWAYS = Fault(kind="stall", attempts=None)


@pytest.mark.parametrize(
    ("faults", "attempt", "expected"),
    [
        ((), 1, None),
        ((FIRST,), 1, FIRST),
        ((FIRST,), 2, None),
        ((FIRST, SECOND_THIRD), 2, SECOND_THIRD),
        ((FIRST, SECOND_THIRD), 3, SECOND_THIRD),
        ((FIRST, SECOND_THIRD), 4, None),
        ((FIRST, ALWAYS), 1, FIRST),
        ((FIRST, ALWAYS), 9, ALWAYS),
    ],
)
def test_select_fault_by_attempt(faults, attempt, expected):
    assert pick(Turn(text=("x",), faults=faults), attempt) == expected


def test_turn_past_the_end_repeats_the_last():
    script = parse_script([{"text": "a"}, {"text": "b"}])
    assert [script.turn_at(i).text for i in range(4)] == [("a",), ("b",), ("b",), ("b",)]


def _body(*roles, system="You are opencode."):
    messages = [{"role": "system", "content": system}]
    messages += [{"role": role, "content": f"{role} says"} for role in roles]
    return {"model": "mock-model", "messages": messages, "stream": True}


def test_dispatcher_counts_attempts_per_turn_and_skips_side_requests():
    script = parse_script([{"text": "a", "faults": [{"kind": "429"}]}, {"text": "b"}])
    dispatcher = Dispatcher(script)
    title = _body(
        "user", "user", system="You are a title generator. You output ONLY a thread title."
    )
    plan = [_body("user"), title, _body("user"), _body("user", "assistant", "tool"), _body("user")]
    decisions = [dispatcher.decide(body) for body in plan]
    seen = [(d.kind, d.turn_index, d.attempt, d.fault.kind if d.fault else None) for d in decisions]
    assert seen == [
        ("turn", 0, 1, "429"),
        ("title", None, None, None),
        ("turn", 0, 2, None),
        ("turn", 1, 1, None),
        ("turn", 0, 3, None),
    ]
    assert decisions[1].turn.text == ("Mock session",)


def _task_body(prompt, *roles):
    messages = [{"role": "system", "content": "You are a subagent."}]
    messages.append({"role": "user", "content": [{"type": "text", "text": prompt}]})
    messages += [{"role": role, "content": f"{role} says"} for role in roles]
    return {"model": "mock-model", "messages": messages, "stream": True}


def test_dispatcher_answers_subagent_conversations_from_their_branch():
    script = parse_script(
        {
            "turns": [{"tool_calls": [{"name": "task"}]}, {"text": "main done"}],
            "subagents": [
                {"match": "Explore", "turns": [{"text": "sub 0", "faults": [{"kind": "500"}]}]},
                {"match": "Review", "turns": [{"text": "rev 0"}, {"text": "rev 1"}]},
            ],
        }
    )
    dispatcher = Dispatcher(script)
    plan = [
        _body("user"),
        _task_body("Explore the repo"),
        _task_body("Explore the repo"),
        _task_body("Now Review", "assistant", "tool", "assistant"),
        _body("user", "assistant", "tool"),
        _task_body("Explore and Review"),
        _task_body("Generate a title for this conversation: Explore"),
    ]
    decisions = [dispatcher.decide(body) for body in plan]
    seen = [(d.kind, d.branch, d.turn_index, d.attempt, d.turn.text) for d in decisions]
    assert seen == [
        ("turn", None, 0, 1, ()),
        ("turn", "Explore", 0, 1, ("sub 0",)),
        ("turn", "Explore", 0, 2, ("sub 0",)),
        ("turn", "Review", 2, 1, ("rev 1",)),
        ("turn", None, 1, 1, ("main done",)),
        ("turn", "Explore", 0, 3, ("sub 0",)),
        ("title", None, None, None, ("Mock session",)),
    ]
    assert [d.fault.kind if d.fault else None for d in decisions[1:3]] == ["500", None]


def test_first_user_text_reads_the_first_user_message_only():
    assert first_user_text(_task_body("Explore", "assistant", "user")) == "Explore"
    assert first_user_text(_body()) == ""
    assert first_user_text([]) == ""


def test_a_2_x_compaction_is_a_summary_in_its_template_and_the_turns_count_on_after_it():
    dispatcher = Dispatcher(parse_script([{"text": "a"}, {"text": "b"}, {"text": "c"}]))
    prompt = {"role": "user", "content": "You MUST summarize the conversation above into a"}
    asked = {"messages": [*_body("user", "assistant", "user", "assistant")["messages"], prompt]}
    summary = dispatcher.decide(asked)
    assert summary.kind == "summary"
    (text,) = summary.turn.text
    assert "\n## Objective\n" in f"\n{text}"  # 2.x fails a summary without its sections
    checkpoint = {
        "role": "user",
        "content": f"<conversation-checkpoint>{text}</conversation-checkpoint>",
    }
    assert turn_index({"messages": [checkpoint]}) == 2
    assert turn_index({"messages": [checkpoint, {"role": "assistant", "content": "x"}]}) == 3
    assert dispatcher.decide({"messages": [checkpoint]}).turn.text == ("c",)


def test_a_2_x_retry_of_a_response_cut_mid_stream_asks_for_the_same_turn_again():
    cut = {"role": "assistant", "content": "alpha "}
    go_on = {"role": "user", "content": "The previous response was interrupted. Continue from"}
    first = _body("user")
    again = {"messages": [*first["messages"], cut, go_on]}
    assert turn_index(again) == turn_index(first) == 0


def test_dispatcher_error_after_overrides_the_script_after_n_agent_requests():
    dispatcher = Dispatcher(parse_script([{"text": "a"}]), error_after=(500, 2))
    faults = [dispatcher.decide(_body("user")).fault for _ in range(4)]
    assert [f.kind if f else None for f in faults] == [None, None, "500", "500"]
    assert faults[2].retry_after == 1.0


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (_body("user"), "turn"),
        (
            _body("user", "user", system="You are a title generator. You output ONLY a title."),
            "title",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "Generate a title for this conversation:\n"}
                ]
            },
            "title",
        ),
        (
            _body("user", "assistant", system="You are a context summarization agent. You are"),
            "summary",
        ),
        (
            _body(
                "user",
                system="You are a helpful AI assistant tasked with summarizing conversations.",
            ),
            "summary",
        ),
        (
            {
                "messages": [
                    {
                        "role": "system",
                        "content": [{"type": "text", "text": "You are a title generator."}],
                    }
                ]
            },
            "title",
        ),
        ({"messages": "nonsense"}, "turn"),
        ([], "turn"),
    ],
)
def test_classify_side_requests(body, kind):
    assert classify(body) == kind


@pytest.mark.parametrize(
    ("capture", "key", "kind", "index"),
    [
        ("mock_request.b_after_tool.json", None, "turn", 1),
        ("mock_request.other_samples.json", "c_reject_with_feedback_followup", "turn", 1),
        ("mock_request.other_samples.json", "title_generation_request", "title", 0),
    ],
)
def test_classify_real_opencode_requests(capture, key, kind, index):
    path = CAPTURES / capture
    if not path.exists():
        pytest.skip(f"capture {path} not available")
    sample = json.loads(path.read_text())
    body = (sample[key] if key else sample)["body"]
    assert (classify(body), turn_index(body)) == (kind, index)
