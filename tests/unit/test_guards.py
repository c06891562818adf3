"""core.guards: spend budgets, loops and compactions, from tracked effects (no IO)."""

from __future__ import annotations

import pytest

from core._tracker_effects import PartDelta, PartFinalized, Passthrough
from core.guards import CHECK_EVERY, MIN_PERIOD, GuardLimits, Guards, repeated_tail, step_tokens

pytestmark = pytest.mark.timeout(30)

_ids = iter(range(1_000_000))


def part(part_type, session="ses_root", role="assistant", text=None, **fields):
    part_id = f"prt_{next(_ids):06d}"
    body = {"id": part_id, "type": part_type, "messageID": "msg_1", **fields}
    return PartFinalized(
        session_id=session,
        message_id="msg_1",
        part_id=part_id,
        part_type=part_type,
        part=body,
        text=text,
        role=role,
        source="stream",
    )


def step(cost=0.0, total=0, **tokens):
    return part("step-finish", cost=cost, tokens={"total": total, **tokens})


def tool(name, session="ses_root", **inputs):
    return part("tool", session=session, tool=name, state={"status": "completed", "input": inputs})


def first_breach(guards, effects):
    for index, effect in enumerate(effects):
        breach = guards.observe(effect)
        if breach is not None:
            return index, breach
    return None


def test_cost_budget_is_spent_on_the_step_that_passes_it():
    guards = Guards(GuardLimits(cost_usd=0.5))
    found = first_breach(guards, [step(cost=0.2) for _ in range(5)])
    assert found is not None
    index, breach = found
    assert index == 2  # 0.2, 0.4, 0.6: the third step passes 0.5
    assert breach.verdict == "incomplete"
    assert breach.reason == "budget spent: cost 0.60 USD of 0.50"
    assert guards.totals()["cost_usd"] == pytest.approx(0.6)


def test_token_and_step_budgets_count_every_session_of_the_tree():
    guards = Guards(GuardLimits(tokens=1000))
    child = part("step-finish", session="ses_child", cost=0, tokens={"total": 600})
    assert guards.observe(step(total=500)) is None
    breach = guards.observe(child)
    assert breach is not None
    assert breach.reason == "budget spent: tokens 1,100 of 1,000"
    steps = Guards(GuardLimits(steps=2))
    assert steps.observe(step()) is None
    assert steps.observe(step()) is None  # two steps are allowed: spent means passed
    assert steps.observe(step()).reason == "budget spent: steps 3 of 2"
    free = Guards(GuardLimits(cost_usd=0.0))
    assert free.observe(step(cost=0.0)) is None  # a free model never passes a zero budget


def test_tokens_without_a_total_are_the_sum_of_their_kinds():
    tokens = {"input": 100, "output": 20, "reasoning": 5, "cache": {"read": 7, "write": 3}}
    assert step_tokens(tokens) == 135
    assert step_tokens({"total": 42, "input": 1}) == 42
    assert step_tokens(None) == 0
    assert step_tokens({"input": "x", "output": True}) == 0


def test_no_budget_means_no_breach_however_much_is_spent():
    guards = Guards(GuardLimits())
    assert first_breach(guards, [step(cost=100.0, total=10**7) for _ in range(50)]) is None
    assert guards.totals() == {
        "cost_usd": 5000.0,
        "tokens": 5 * 10**8,
        "steps": 50,
        "compactions": 0,
    }


def test_the_same_tool_call_repeated_is_a_loop_naming_the_tool():
    guards = Guards(GuardLimits(repeats=4))
    calls = [tool("read", filePath="/p/a.txt") for _ in range(6)]
    index, breach = first_breach(guards, calls)
    assert index == 3
    assert breach.verdict == "stalled"
    assert breach.reason.startswith("looping: read ")
    assert "a.txt" in breach.reason
    assert "4 times in a row" in breach.reason


def test_another_call_breaks_the_row_and_text_between_calls_does_not():
    guards = Guards(GuardLimits(repeats=3))
    same = lambda: tool("read", filePath="/p/a.txt")  # noqa: E731
    other = tool("read", filePath="/p/b.txt")
    talk = part("text", text="Let me look again.")
    assert first_breach(guards, [same(), same(), other, same(), talk, same()]) is None
    assert guards.observe(same()) is not None  # third in a row, the text did not break it


def test_rows_are_per_session():
    guards = Guards(GuardLimits(repeats=3))
    calls = [tool("glob", session=s, pattern="*") for s in ("ses_a", "ses_b") * 2]
    assert first_breach(guards, calls) is None


def test_the_same_assistant_text_part_in_a_row_is_a_loop():
    guards = Guards(GuardLimits(repeats=3))
    texts = [part("text", text="I will  fix it now.\n") for _ in range(3)]
    index, breach = first_breach(guards, texts)
    assert index == 2
    assert breach.reason == "looping: the same text 3 times in a row: 'I will fix it now.'"
    prompts = Guards(GuardLimits(repeats=2))
    assert first_breach(prompts, [part("text", role="user", text="Go.")] * 3) is None


def test_texts_differing_only_in_white_space_are_the_same_and_a_long_one_is_quoted_short():
    guards = Guards(GuardLimits(repeats=2))
    long = " ".join(f"word{i}" for i in range(20_000))
    texts = [part("text", text=long), part("text", text="\n" + long.replace(" ", "\t  ") + " ")]
    index, breach = first_breach(guards, texts)
    assert index == 1
    shown = long[:59] + "…"
    assert breach.reason == f"looping: the same text 2 times in a row: {shown!r}"
    assert first_breach(Guards(GuardLimits(repeats=2)), [part("text", text=" \n ")] * 3) is None


def test_text_repeating_inside_one_streamed_part_is_a_loop():
    guards = Guards(GuardLimits(repeats=5))
    sentence = (
        "The answer is to keep reading the file again, because the file may have changed since. "
    )
    deltas = [
        PartDelta(session_id="s", message_id="m", part_id="p", part_type="text", delta=word + " ")
        for word in ("Intro text first. " + sentence * 40).split()
    ]
    found = first_breach(guards, deltas)
    assert found is not None
    assert found[1].reason.startswith("looping: text repeating 5 times: '")
    assert "The answer is to keep" in found[1].reason
    assert found[0] < len(deltas) - 1  # caught while streaming, not at the end


def test_varied_text_streamed_long_is_no_loop():
    guards = Guards(GuardLimits(repeats=3))
    deltas = [
        PartDelta(session_id="s", message_id="m", part_id="p", part_type="text", delta=f"{i} ")
        for i in range(5 * CHECK_EVERY)
    ]
    assert first_breach(guards, deltas) is None


LONG = (
    "I will now read the configuration file to find the setting that controls the retry"
    " behaviour, and then I will update it accordingly today. "
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("head " + LONG * 3, repr(" ".join(LONG.split())[:59] + "…")),
        ("head " + LONG * 2, None),  # twice is not three times
        ("abc " * 10, None),  # a period shorter than MIN_PERIOD
        ("x" * 2000, None),  # no words: a rule, not a model repeating itself
        ("0 0 0 0 0 0 0 0 0 0\n" * 100, None),  # a table of zeros
        ("We will retry now. " * 6, None),  # repeated, but too little text to call it a loop
        (
            "We will retry now. " * 30,
            "'We will retry now. We will retry now. We will retry now. We…'",
        ),
        ("", None),
    ],
)
def test_repeated_tail(text, expected):
    assert len(LONG) >= MIN_PERIOD
    assert repeated_tail(text, 3) == expected


def test_compactions_are_counted_and_budgeted():
    guards = Guards(GuardLimits(compactions=1))
    event = Passthrough(event_type="session.compacted", session_id="s", event={})
    assert guards.observe(event) is None
    breach = guards.observe(event)
    assert breach is not None
    assert (breach.verdict, breach.reason) == ("incomplete", "budget spent: compactions 2 of 1")
    assert guards.totals()["compactions"] == 2


def test_the_same_words_before_different_tool_calls_are_no_loop():
    guards = Guards(GuardLimits(repeats=3))
    effects = []
    for name in ("a", "b", "c", "d", "e"):
        effects += [part("text", text="Let me read the next file."), tool("read", filePath=name)]
    assert first_breach(guards, effects) is None
