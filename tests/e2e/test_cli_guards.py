"""`python -m runner` against the real opencode and the mock: the guards of a long unattended run
(loops, spend budgets, compactions) end the phase with an honest verdict, and fast."""

from __future__ import annotations

import copy

import pytest

from tests.e2e.test_cli import PROVIDER, assert_consistent, cli  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def read(path):
    return {"name": "read", "arguments": {"filePath": path}}


def provider(**model):
    """The mock provider with the model's config changed (cost, limits)."""
    config = copy.deepcopy(PROVIDER)
    config["provider"]["test"]["models"]["mock-model"].update(model)
    return config


def aborted(run):
    """The session's turn ended by our abort."""
    errors = [e for e in run.transcript if e.get("type") == "session.error"]
    return any(e["properties"]["error"]["name"] == "MessageAbortedError" for e in errors)


def test_the_same_tool_call_forever_is_stalled_as_a_loop(cli):  # noqa: F811
    run = cli({"turns": [{"tool_calls": [read("README.md")]}]}, budgets={"repeats": 4}, warm=True)
    assert_consistent(run, "stalled", 2)
    assert run.result["reason"].startswith("looping: read ")
    assert "README.md" in run.result["reason"]
    assert run.result["duration"] < 30
    assert aborted(run)
    assert len(run.mock.journal.turns()) <= 6  # stopped at the fourth call, not later


def test_a_cost_budget_ends_the_phase_within_one_step(cli):  # noqa: F811
    # 2 USD per million input tokens, 100k input tokens a step: 0.20 USD a step.
    config = provider(cost={"input": 2, "output": 0}, limit={"context": 10_000_000, "output": 4096})
    usage = {"prompt_tokens": 100_000, "completion_tokens": 10}
    turns = [{"tool_calls": [read(f"file{i}.txt")], "usage": usage} for i in range(12)]
    run = cli({"turns": turns}, opencode_config=config, budgets={"cost_usd": 0.5}, warm=True)
    assert_consistent(run, "incomplete", 2)
    assert run.result["reason"].startswith("budget spent: cost ")
    assert run.result["reason"].endswith(" USD of 0.50")
    spent = run.result["spend"]["cost_usd"]
    assert 0.5 <= spent <= 0.5 + 0.2 + 1e-9  # within one step of the budget
    assert run.result["spend"]["steps"] <= 4
    assert aborted(run)


def test_a_subagents_spend_is_one_figure_in_the_whole_result(cli):  # noqa: F811
    # All the cost is the child session's: its steps are the attempt's, so the result's
    # totals, its attempts and its spend say the same.
    config = provider(cost={"input": 2, "output": 0}, limit={"context": 10_000_000, "output": 4096})
    usage = {"prompt_tokens": 100_000, "completion_tokens": 10}
    task = {"description": "child work", "prompt": "SUBTASK: read", "subagent_type": "general"}
    script = {
        "turns": [{"tool_calls": [{"name": "task", "arguments": task}]}, {"text": "Done."}],
        "subagents": [
            {
                "match": "SUBTASK",
                "turns": [{"tool_calls": [read(f"f{i}.txt")], "usage": usage} for i in range(8)],
            }
        ],
    }
    run = cli(
        script,
        opencode_config=config,
        budgets={"cost_usd": 0.5},
        # allows all: a policy that restricts a subagent is refused before 1.17 (its child
        # would escape the rules), and the budget is what this test is about
        permissions={"default": "allow"},
        warm=True,
    )
    assert_consistent(run, "incomplete", 2)
    assert run.result["reason"].startswith("budget spent: cost ")
    spent = run.result["spend"]["cost_usd"]
    assert spent > 0.5
    assert run.result["totals"]["cost"] == spent
    assert sum(a["cost"] for a in run.result["attempts"]) == spent
    assert run.result["totals"]["steps"] == run.result["spend"]["steps"]


COMPACTING = {
    "turns": [
        # 50k prompt tokens in a 20k context: opencode compacts the session (asking the model
        # for a summary: the second turn), then goes on (the third).
        {"tool_calls": [read("README.md")], "usage": {"prompt_tokens": 50_000}},
        {"text": "Summary: read the readme."},
        {"text": "Done."},
    ]
}
SMALL_CONTEXT = provider(limit={"context": 20_000, "output": 1000})


def test_a_compaction_is_counted_in_the_result(cli):  # noqa: F811
    run = cli(COMPACTING, opencode_config=SMALL_CONTEXT, warm=True)
    assert_consistent(run, "done", 0)
    assert [a["compactions"] for a in run.result["attempts"]] == [1]
    assert run.result["totals"]["compactions"] == 1
    assert run.result["spend"]["compactions"] == 1


def test_compactions_over_their_budget_end_the_phase_incomplete(cli):  # noqa: F811
    run = cli(COMPACTING, opencode_config=SMALL_CONTEXT, budgets={"compactions": 0}, warm=True)
    assert_consistent(run, "incomplete", 2)
    assert run.result["reason"] == "budget spent: compactions 1 of 0"
