"""`output_schema` end to end: opencode 1.x offers the model its StructuredOutput tool (2.x has
none: the runner asks for a closing JSON block, which the mock writes for a scripted
StructuredOutput call), the runner checks the result against the schema, repairs a result that
does not fit, and still resyncs these sessions (opencode 1.18.33 cannot list a page that holds a
prompt sent with an output format)."""

from __future__ import annotations

import json

import pytest

from core.protocol.v2 import ANSWER
from tests.e2e.test_cli import assert_consistent
from tests.e2e.test_cli_faults import attach, stage  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}, "why": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def structured(arguments):
    return {"tool_calls": [{"name": "StructuredOutput", "arguments": arguments}]}


def lines(run):
    return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def test_a_valid_structured_result_is_done_and_lands_in_the_result(stage, attach):  # noqa: F811
    setup = stage({"turns": [structured({"answer": 42, "why": "it is"})]})
    run = attach(setup, args=("--json",), output_schema=SCHEMA)
    assert_consistent(run, "done", 0)
    assert run.result["structured"] == {"answer": 42, "why": "it is"}
    out = lines(run)
    assert out[-2] == {"type": "runner.structured", "structured": {"answer": 42, "why": "it is"}}
    assert out[-1]["type"] == "runner.result"
    request = setup.mock.journal.turns()[0].body
    finishes = [a["finish"] for a in run.result["attempts"]]
    if run.result["server_capabilities"]["protocol"] == 1:
        assert finishes == ["structured"]
        assert request["tool_choice"] == "required"  # opencode made the model answer by the tool
        assert "StructuredOutput" in [tool["function"]["name"] for tool in request["tools"]]
    else:  # the model was asked for a closing JSON block and ended its turn
        assert finishes == ["stop"]
        assert ANSWER in json.dumps(request["messages"])


def test_a_result_that_does_not_fit_is_repaired_once(stage, attach):  # noqa: F811
    turns = [structured({"answer": "forty-two"}), structured({"answer": 42})]
    setup = stage({"turns": turns})
    run = attach(setup, args=("--json",), output_schema=SCHEMA)
    assert_consistent(run, "done", 0)
    assert [a["kind"] for a in run.result["attempts"]] == ["initial", "repair"]
    assert run.result["structured"] == {"answer": 42}
    repair = setup.mock.journal.turns()[1].body["messages"][-1]
    text = json.dumps(repair)
    assert "does not fit the schema at answer" in text, text


def test_no_valid_result_within_the_repairs_is_incomplete(stage, attach):  # noqa: F811
    setup = stage({"turns": [structured({"answer": "never a number"})]})
    run = attach(setup, output_schema=SCHEMA, budgets={"repairs": 1})
    assert_consistent(run, "incomplete", 2)
    assert "does not fit the schema at answer" in run.result["reason"]
    assert run.result["structured"] == {"answer": "never a number"}


def test_a_structured_session_resyncs_after_a_cut_stream(stage, attach):  # noqa: F811
    slow = {"text": [f"w{i} " for i in range(30)], "delay": 0.1}
    setup = stage({"turns": [{**slow, **structured({"answer": 7})}]})

    def cut(stage):
        stage.mock.journal.wait_for(1, timeout=60)
        stage.proxy.wait_for_events(8, timeout=30)
        stage.proxy.drop_streams()

    run = attach(setup, args=("--json",), during=cut, output_schema=SCHEMA)
    assert_consistent(run, "done", 0)
    assert run.result["structured"] == {"answer": 7}
    assert run.result["reconnects"] >= 1
    resyncs = run.records("resynced")
    assert resyncs
    assert all(record["error"] is None for record in resyncs), resyncs
