"""The termination policy's rules: its states, its one transition table (see
`core.termination`). The table:

  STARTING --START--> PROMPTING --POSTED--> RUNNING --ATTEMPT_ENDED--> CHECKING
  CHECKING --FOLLOW_UP (resume / repair)--> PROMPTING
  STARTING, PROMPTING, RUNNING, CHECKING --TIMEOUT--> ABORTING
  PROMPTING, RUNNING --STALL--> ABORTING;  RUNNING --RETRIES_SPENT--> ABORTING
  PROMPTING, RUNNING --GUARD (a budget spent, a loop: `core.guards`)--> ABORTING
  PROMPTING, RUNNING, CHECKING --INTERRUPT--> ABORTING
  ABORTING --ABORT_ENDED (an idle, or the grace: 10 s, 0.5 s after an interrupt)--> DONE
  any state but DONE --CONCLUDE (checks, provider error, prompt or server lost)--> DONE
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    """Where one phase is in its life."""

    STARTING = "starting"  # waiting for the stream, before the first prompt
    PROMPTING = "prompting"  # an attempt's prompt is being sent (baseline first)
    RUNNING = "running"  # the prompt is posted: the session works, its idle ends the attempt
    CHECKING = "checking"  # the attempt ended: the `done` checks run
    ABORTING = "aborting"  # the session was aborted: waiting for its idle or the grace
    DONE = "done"  # the verdict is out; every further input is ignored


class Trigger(enum.Enum):
    """What an input means for the state, once the policy has read it."""

    START = "start"  # the stream is connected
    POSTED = "posted"  # the attempt's baseline is taken and its prompt goes out
    ATTEMPT_ENDED = "attempt_ended"  # an idle after the attempt showed life
    FOLLOW_UP = "follow_up"  # the checks asked for a resume or a repair
    TIMEOUT = "timeout"  # the phase's wall clock ran out
    STALL = "stall"  # no progress for the stall timeout
    RETRIES_SPENT = "retries_spent"  # provider retries over the attempt's budget
    GUARD = "guard"  # a spend budget passed, a loop seen, compactions over their budget
    INTERRUPT = "interrupt"  # Ctrl-C, SIGTERM or a cancel from the embedder
    ABORT_ENDED = "abort_ended"  # the aborted session went idle, or the grace ran out
    CONCLUDE = "conclude"  # a verdict is decided: checks, provider error, lost server or stream


_S = State
# Live states: every one of them can conclude at once (a dead server waits for nothing).
_LIVE = (_S.STARTING, _S.PROMPTING, _S.RUNNING, _S.CHECKING, _S.ABORTING)

_RULES: tuple[tuple[Trigger, tuple[State, ...], State], ...] = (
    # (trigger, from any of these states, to)
    (Trigger.START, (_S.STARTING,), _S.PROMPTING),
    (Trigger.POSTED, (_S.PROMPTING,), _S.RUNNING),
    (Trigger.ATTEMPT_ENDED, (_S.RUNNING,), _S.CHECKING),
    (Trigger.FOLLOW_UP, (_S.CHECKING,), _S.PROMPTING),
    (Trigger.TIMEOUT, (_S.STARTING, _S.PROMPTING, _S.RUNNING, _S.CHECKING), _S.ABORTING),
    # Before the first prompt and while the checks run the runner works, not the session.
    (Trigger.STALL, (_S.PROMPTING, _S.RUNNING), _S.ABORTING),
    (Trigger.RETRIES_SPENT, (_S.RUNNING,), _S.ABORTING),
    # While the checks run the session is idle: the follow-up is refused instead.
    (Trigger.GUARD, (_S.PROMPTING, _S.RUNNING), _S.ABORTING),
    # Before the first prompt there is nothing to abort; while aborting, an interrupt
    # concludes at once (CONCLUDE) rather than waiting for the abort already under way.
    (Trigger.INTERRUPT, (_S.PROMPTING, _S.RUNNING, _S.CHECKING), _S.ABORTING),
    (Trigger.ABORT_ENDED, (_S.ABORTING,), _S.DONE),
    (Trigger.CONCLUDE, _LIVE, _S.DONE),
)

TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (state, trigger): target for trigger, sources, target in _RULES for state in sources
}

# States in which a new assistant message is the current attempt's (it shows life).
TURN_STATES = frozenset({State.RUNNING, State.ABORTING})


def next_state(state: State, trigger: Trigger) -> State | None:
    """The state `trigger` leads to from `state`, or None when it is not legal there."""
    return TRANSITIONS.get((state, trigger))
