"""The termination policy, driven by hand-written histories and a fake clock (time = numbers)."""

from __future__ import annotations

import dataclasses

import pytest

from core._termination_rules import TRANSITIONS
from core.termination import (
    ABORT_GRACE,
    INTERRUPT_GRACE,
    Abort,
    Conclude,
    Limits,
    Policy,
    RunChecks,
    SendPrompt,
    State,
    Trigger,
    classify,
)
from core.tracker import (
    MessageUpdated,
    PartFinalized,
    PermissionAsked,
    SessionError,
    SessionIdle,
    StatusChanged,
)

pytestmark = pytest.mark.timeout(10)

ROOT = "ses_root"


def busy():
    return StatusChanged(session_id=ROOT, status={"type": "busy"})


def retry(n, message="rate limited"):
    return StatusChanged(
        session_id=ROOT, status={"type": "retry", "attempt": n, "message": message, "next": 0}
    )


def assistant(msg_id, finish=None, error=None):
    info = {"id": msg_id, "role": "assistant", "finish": finish}
    if error:
        info["error"] = error
    return MessageUpdated(session_id=ROOT, info=info)


def step_finish(msg_id, reason="stop", tokens=(10, 5)):
    part = {
        "id": f"prt_{msg_id}",
        "messageID": msg_id,
        "type": "step-finish",
        "reason": reason,
        "cost": 0.5,
        "tokens": {
            "input": tokens[0],
            "output": tokens[1],
            "reasoning": 0,
            "cache": {"read": 1, "write": 0},
        },
    }
    return PartFinalized(
        session_id=ROOT,
        message_id=msg_id,
        part_id=part["id"],
        part_type="step-finish",
        part=part,
        text=None,
        role="assistant",
        source="stream",
    )


IDLE = SessionIdle(session_id=ROOT)


def started(limits=None, now=0.0):
    policy = Policy(limits or Limits(), prompt="Do it", session_id=ROOT, now=now)
    (send,) = policy.start(now)
    assert send == SendPrompt(number=1, kind="initial", text="Do it", reason=None)
    policy.baseline_taken("msg_000", now)
    return policy


def reject(policy, *, reply="reject", session_id=ROOT, patterns=()):
    """The responder's answer to request `per_1`, as the termination actor passes it on."""
    return policy.permission_answered(
        request_id="per_1",
        reply=reply,
        permission="bash",
        patterns=patterns,
        session_id=session_id,
    )


def turn(policy, msg_id, finish, now=1.0):
    """A whole turn: busy, the message, its step, idle. Returns the policy's effects."""
    return policy.observe((busy(), assistant(msg_id, finish), step_finish(msg_id), IDLE), now)


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("stop", "ok"),
        ("end_turn", "ok"),
        ("tool-calls", "cut"),
        ("tool_use", "cut"),
        ("unknown", "cut"),
        (None, "cut"),
        ("length", "failure"),
        ("max_tokens", "failure"),
        ("content-filter", "failure"),
        ("error", "failure"),
    ],
)
def test_classify(finish, expected):
    assert classify(finish) == expected


def test_stop_and_passing_checks_is_done():
    policy = started()
    assert turn(policy, "msg_001", "stop") == [RunChecks()]
    (verdict,) = policy.checks_done((), repairable=False, now=2.0)
    assert verdict == Conclude(
        verdict="done", reason="finish reason stop after 1 step(s); done checks passed"
    )
    assert verdict.exit_code == 0
    attempt = policy.attempts[0].as_dict()
    assert (attempt["steps"], attempt["tokens"]["input"], attempt["cost"]) == (1, 10, 0.5)


def test_idle_before_any_life_is_ignored():
    policy = started()
    assert policy.observe((IDLE, IDLE), 0.5) == []
    assert policy.state is State.RUNNING


def test_stale_message_at_the_baseline_is_not_life():
    policy = started()
    assert policy.observe((assistant("msg_000", "stop"), IDLE), 0.5) == []


def test_cut_with_passing_checks_and_no_rejection_is_done_gracefully():
    policy = started()
    turn(policy, "msg_001", "tool-calls")
    (verdict,) = policy.checks_done((), repairable=False, now=2.0)
    assert verdict.verdict == "done_gracefully"


def test_cut_after_a_rejected_permission_resumes():
    policy = started()
    reject(policy)
    turn(policy, "msg_001", "tool-calls")
    (resume,) = policy.checks_done((), repairable=False, now=2.0)
    assert isinstance(resume, SendPrompt)
    assert resume.kind == "resume"
    assert "'tool-calls' after 1 step(s)" in resume.text


def test_missing_artifact_is_repaired_until_the_budget_then_incomplete():
    policy = started(Limits(repairs=2))
    missing = (("artifacts", "no file matching 'out.md' was created or modified"),)
    for number in (2, 3):
        turn(policy, f"msg_00{number}", "stop", now=float(number))
        (follow,) = policy.checks_done(missing, repairable=True, now=float(number))
        assert (follow.number, follow.kind) == (number, "repair")
        assert "out.md" in follow.text
        policy.baseline_taken(f"msg_00{number}", float(number))
    turn(policy, "msg_009", "stop", now=9.0)
    (verdict,) = policy.checks_done(missing, repairable=True, now=9.0)
    assert verdict.verdict == "incomplete"
    assert verdict.exit_code == 2
    assert "done checks still failing after 2 repair(s)" in verdict.reason
    assert "out.md" in verdict.reason


def test_a_failure_after_a_cut_turn_is_resumed_not_repaired():
    policy = started(Limits(resumes=1, repairs=1))
    missing = (("artifacts", "no file matching 'out.md' was created or modified"),)
    turn(policy, "msg_002", "length", now=2.0)
    (follow,) = policy.checks_done(missing, repairable=True, now=2.0)
    assert follow.kind == "resume"
    assert "out.md" in follow.text


def test_failed_front_matter_after_ok_finish_gets_a_repair_with_the_validator_output():
    policy = started()
    turn(policy, "msg_001", "stop")
    failure = (("frontmatter", "notes.md: front matter is missing required keys: title"),)
    (repair,) = policy.checks_done(failure, repairable=True, now=2.0)
    assert repair.kind == "repair"
    assert "missing required keys: title" in repair.text
    policy.baseline_taken("msg_001", 2.0)
    turn(policy, "msg_002", "stop", now=3.0)
    (verdict,) = policy.checks_done((), repairable=False, now=3.0)
    assert verdict.verdict == "done"
    assert [a.kind for a in policy.attempts] == ["initial", "repair"]


def test_repairs_exhausted_is_incomplete():
    policy = started(Limits(repairs=0))
    turn(policy, "msg_001", "stop")
    (verdict,) = policy.checks_done((("command", "make check exited 2"),), repairable=True, now=2.0)
    assert verdict.verdict == "incomplete"


def test_provider_error_is_failed_with_its_message():
    policy = started()
    error = {"name": "APIError", "data": {"message": "mock down", "statusCode": 500}}
    effects = policy.observe((busy(), SessionError(session_id=ROOT, error=error), IDLE), 1.0)
    assert effects == [
        Conclude(verdict="failed", reason="provider error: APIError (HTTP 500): mock down")
    ]


def test_retries_are_counted_and_over_budget_abort_as_failed():
    policy = started(Limits(provider_retries=2))
    assert policy.observe((busy(), retry(1), busy(), retry(2)), 1.0) == []
    assert policy.attempts[0].retries == 2
    (abort,) = policy.observe((retry(3),), 2.0)
    assert abort == Abort(
        verdict="failed", reason="provider retried 3 times (budget 2): rate limited"
    )
    (verdict,) = policy.observe((IDLE,), 3.0)
    assert verdict.verdict == "failed"


def test_stall_aborts_then_concludes_on_idle():
    policy = started(Limits(stall_timeout=10))
    policy.observe((busy(),), 1.0)
    assert policy.tick(10.9) == []
    (abort,) = policy.tick(11.0)
    assert abort == Abort(verdict="stalled", reason="no progress for 10s")
    assert policy.tick(12.0) == []
    error = {"name": "MessageAbortedError", "data": {"message": "Aborted"}}
    (verdict,) = policy.observe((SessionError(session_id=ROOT, error=error), IDLE), 12.5)
    assert (verdict.verdict, verdict.exit_code) == ("stalled", 2)


def test_phase_timeout_aborts_and_concludes_after_grace_without_idle():
    policy = started(Limits(phase_timeout=60, stall_timeout=1000))
    policy.observe((busy(),), 30.0)
    (abort,) = policy.tick(60.0)
    assert abort.verdict == "timed_out"
    assert abort.reason == "phase timeout of 1m reached"
    assert policy.tick(65.0) == []
    (verdict,) = policy.tick(70.0)
    assert verdict.verdict == "timed_out"


def test_an_abort_the_server_found_nothing_to_interrupt_for_ends_at_once():
    policy = started(Limits(stall_timeout=10))
    (abort,) = policy.tick(11.0)
    assert policy.abort_done(True, 11.1) == []  # a turn was interrupted: its idle ends it
    (verdict,) = policy.abort_done(False, 11.2)  # nothing ran (2.x): no event will come
    assert (verdict.verdict, verdict.reason) == (abort.verdict, abort.reason)
    assert policy.abort_done(False, 11.3) == []  # concluded once


def test_an_abort_while_the_prompt_was_being_sent_waits_for_the_idle_or_its_grace():
    policy = Policy(Limits(), prompt="Do it", session_id=ROOT, now=0.0)
    policy.start(0.0)  # the prompt goes out: its run may start after any answer
    (abort,) = policy.external_failure("interrupted", "interrupted by SIGINT", 0.5)
    assert abort.verdict == "interrupted"
    assert policy.abort_done(False, 0.6) == []
    (verdict,) = policy.observe((IDLE,), 0.7)
    assert verdict.verdict == "interrupted"


def test_interrupt_while_running_aborts_first():
    policy = started()
    (abort,) = policy.external_failure("interrupted", "interrupted by SIGINT", 1.0)
    assert abort.verdict == "interrupted"
    (verdict,) = policy.observe((IDLE,), 1.5)
    assert verdict.exit_code == 130


def test_server_death_concludes_at_once_and_only_once():
    policy = started()
    (verdict,) = policy.external_failure("failed", "opencode server died", 1.0)
    assert verdict.verdict == "failed"
    assert policy.external_failure("failed", "again", 2.0) == []
    assert policy.observe((IDLE,), 3.0) == []


def test_other_sessions_do_not_drive_the_root():
    policy = started()
    child_idle = SessionIdle(session_id="ses_child")
    child_busy = StatusChanged(session_id="ses_child", status={"type": "busy"})
    assert policy.observe((child_busy, child_idle), 1.0) == []


def test_checks_done_outside_checking_is_ignored():
    policy = started()
    assert policy.checks_done((), repairable=False, now=1.0) == []


def test_an_error_without_busy_still_ends_the_attempt():
    policy = started()
    error = {"name": "UnknownError", "data": {"message": "Model not found: test/nope."}}
    (verdict,) = policy.observe((SessionError(session_id=ROOT, error=error), IDLE), 1.0)
    assert verdict.reason == "provider error: UnknownError: Model not found: test/nope."


def test_a_busy_status_alone_does_not_let_a_stale_idle_end_the_attempt():
    policy = started()
    assert policy.observe((busy(), IDLE), 1.0) == []
    assert policy.state is State.RUNNING


def test_a_length_error_is_a_failure_finish_that_resumes():
    policy = started()
    error = {"name": "MessageOutputLengthError", "data": {}}
    effects = policy.observe((assistant("msg_001", None, error=error), IDLE), 1.0)
    assert effects == [RunChecks()]
    (resume,) = policy.checks_done((), repairable=False, now=2.0)
    assert resume.kind == "resume"
    assert "finish reason 'length'" in resume.text


def test_a_permission_asked_is_not_decided_by_the_policy():
    policy = started()
    ask = PermissionAsked(session_id="ses_child", request={"id": "per_1", "permission": "bash"})
    assert policy.observe((ask,), 0.5) == []
    assert policy.rejected_permissions == []
    turn(policy, "msg_001", "tool-calls")
    (verdict,) = policy.checks_done((), repairable=False, now=2.0)
    assert verdict.verdict == "done_gracefully"


def test_a_permission_rejected_in_a_subagent_counts_once_by_request_id():
    policy = started()
    for _ in range(2):
        reject(policy, session_id="ses_child", patterns=("rm -rf x",))
    assert policy.rejected_permissions == [
        {
            "reply": "reject",
            "permission": "bash",
            "patterns": ["rm -rf x"],
            "session_id": "ses_child",
            "request_id": "per_1",
        }
    ]
    assert policy.summary()["rejected_permissions"] == policy.rejected_permissions
    turn(policy, "msg_001", "tool-calls")
    (follow,) = policy.checks_done((), repairable=False, now=2.0)
    assert follow.kind == "resume"


def test_an_allowed_permission_is_not_a_rejection():
    policy = started()
    reject(policy, reply="once")
    reject(policy, reply="reject")  # the same request again: its first answer stands
    assert policy.rejected_permissions == []


def test_interrupt_concludes_after_its_short_grace_without_idle():
    policy = started()
    (abort,) = policy.external_failure("interrupted", "interrupted by SIGINT", 10.0)
    assert abort.verdict == "interrupted"
    assert INTERRUPT_GRACE == 0.5
    assert policy.tick(10.0 + INTERRUPT_GRACE - 0.01) == []
    (verdict,) = policy.tick(10.0 + INTERRUPT_GRACE)
    assert (verdict.verdict, verdict.exit_code) == ("interrupted", 130)


def test_other_aborts_keep_the_long_grace():
    policy = started(Limits(stall_timeout=10))
    (abort,) = policy.tick(10.0)
    assert abort.verdict == "stalled"
    assert policy.tick(10.0 + ABORT_GRACE - 0.01) == []
    (verdict,) = policy.tick(10.0 + ABORT_GRACE)
    assert verdict.verdict == "stalled"


def test_interrupt_while_aborting_concludes_at_once():
    policy = started(Limits(stall_timeout=10))
    policy.tick(10.0)
    (verdict,) = policy.external_failure("interrupted", "interrupted by SIGINT", 10.1)
    assert verdict == Conclude(verdict="interrupted", reason="interrupted by SIGINT")


def test_interrupt_before_the_first_prompt_concludes_at_once():
    policy = Policy(Limits(), prompt="p", session_id=ROOT, now=0.0)
    (verdict,) = policy.external_failure("interrupted", "interrupted by SIGINT", 0.1)
    assert verdict.verdict == "interrupted"
    assert policy.state is State.DONE


@pytest.mark.parametrize(
    ("state", "trigger", "target"),
    [
        (State.STARTING, Trigger.START, State.PROMPTING),
        (State.PROMPTING, Trigger.POSTED, State.RUNNING),
        (State.RUNNING, Trigger.ATTEMPT_ENDED, State.CHECKING),
        (State.CHECKING, Trigger.FOLLOW_UP, State.PROMPTING),
        (State.CHECKING, Trigger.TIMEOUT, State.ABORTING),
        (State.RUNNING, Trigger.STALL, State.ABORTING),
        (State.CHECKING, Trigger.STALL, None),
        (State.STARTING, Trigger.STALL, None),
        (State.PROMPTING, Trigger.RETRIES_SPENT, None),
        (State.STARTING, Trigger.INTERRUPT, None),
        (State.ABORTING, Trigger.INTERRUPT, None),
        (State.ABORTING, Trigger.ABORT_ENDED, State.DONE),
        (State.ABORTING, Trigger.CONCLUDE, State.DONE),
        (State.RUNNING, Trigger.ABORT_ENDED, None),
    ],
)
def test_transition_table(state, trigger, target):
    assert TRANSITIONS.get((state, trigger)) == target


def test_done_accepts_no_trigger():
    assert not [trigger for trigger in Trigger if (State.DONE, trigger) in TRANSITIONS]


def test_an_illegal_input_changes_nothing():
    policy = started()
    assert policy.baseline_taken("msg_999", 1.0) == []  # not PROMPTING
    assert policy.start(1.0) == []  # not STARTING
    assert policy.state is State.RUNNING
    assert policy.attempts[0].baseline == "msg_000"


def test_a_subagents_steps_count_in_the_attempt_under_way():
    """The session tree's steps are the attempt's: its figures and the spend agree."""
    policy = started()
    child = dataclasses.replace(step_finish("msg_002", tokens=(100, 7)), session_id="ses_child")
    child.part["cost"] = 0.25
    root = step_finish("msg_003")
    root.part["cost"] = 0.5
    policy.observe((busy(), child, assistant("msg_003", "stop"), root, IDLE), 1.0)
    attempt = policy.summary()["attempts"][0]
    assert attempt["steps"] == 2
    assert attempt["cost"] == 0.75 == policy.summary()["spend"]["cost_usd"]
    assert attempt["tokens"]["input"] == 110
