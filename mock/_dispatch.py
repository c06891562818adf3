"""Which answer a chat request gets: an agent turn with its attempt and fault, or a fixed
answer for opencode's side requests (title, summary) that never consume a turn.

Theory of operation: the turn index is the number of `assistant` messages in the request,
so the history itself says where the loop is and opencode's retries (identical bodies) land
on the same turn. Past the end of the script the last turn repeats (a `strict` script answers
400 instead, naming the turn). The attempt is 1 + how
many earlier requests had the same turn index, counted per `Dispatcher` (per `MockLLM`).
Subagent sessions (opencode's `task` tool) start a fresh conversation of their own, which
would replay turn 0 (the task call) forever; so a request whose first user message contains
a `subagents` branch's `match` takes its turn from that branch instead, attempts counted per
(branch, turn). Side requests are classified first, so they never reach a branch.
Side requests are recognised by opencode's own prompts (1.18.33, checked in its binary):
the title generator's system prompt (or its "Generate a title for this conversation:" user
message), the compaction agent's ("You are a context summarization agent"; older releases
said "tasked with summarizing conversations"), the session summary prompt ("Summarize
what was done in this conversation"), and 2.x's compaction prompt ("You MUST summarize the
conversation above", or "Update the existing checkpoint" for a second one). The summary is
in 2.x's template (it fails a compaction whose summary has none of its `## ` sections) and
says how many turns the conversation had: 2.x goes on from that summary alone (a checkpoint
in a user message, no assistant message before it), so the turn index counts on from there.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mock._model import Fault, Script, Turn, select_fault
from mock._tools import fitted

_TITLE_PREFIXES = ("You are a title generator",)
_TITLE_USER_PREFIXES = ("Generate a title for this conversation",)
_SUMMARY_PREFIXES = (
    "You are a context summarization agent",
    "Summarize what was done in this conversation",
    "You MUST summarize the conversation above",  # 2.x
    "Update the existing checkpoint in the conversation above",  # 2.x, a second compaction
)
_SUMMARY_PHRASES = ("tasked with summarizing conversations",)
SUMMARY_TEXT = (
    "## Objective\n- Mock summary: the user asked for work and the assistant did it.\n\n"
    "## Work State\n- mock turns so far: {turns}"
)
_TURNS_SO_FAR = re.compile(r"mock turns so far: (\d+)")
_CONTINUE = "The previous response was interrupted."  # 2.x, after a response cut mid-stream


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What to answer: the kind of request, the turn to stream, and the fault to apply."""

    kind: str
    turn_index: int | None
    attempt: int | None
    turn: Turn
    fault: Fault | None
    branch: str | None = None


def message_text(message: Any) -> str:
    """The text of a chat message whose content is a string or a list of text parts."""
    content = message.get("content") if isinstance(message, Mapping) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = (part.get("text") for part in content if isinstance(part, Mapping))
        return "".join(part for part in parts if isinstance(part, str))
    return ""


def _messages(body: Any) -> list[Any]:
    messages = body.get("messages") if isinstance(body, Mapping) else None
    return messages if isinstance(messages, list) else []


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, Mapping) else None


def classify(body: Any) -> str:
    """ "title", "summary" or "turn" for a chat request body."""
    messages = _messages(body)
    system = [message_text(m).lstrip() for m in messages if _role(m) == "system"]
    users = [message_text(m).lstrip() for m in messages if _role(m) == "user"]
    if any(text.startswith(_TITLE_PREFIXES) for text in system) or any(
        text.startswith(_TITLE_USER_PREFIXES) for text in users
    ):
        return "title"
    prompts = system + users[-1:]
    if any(text.startswith(_SUMMARY_PREFIXES) for text in prompts):
        return "summary"
    if any(phrase in text for text in system for phrase in _SUMMARY_PHRASES):
        return "summary"
    return "turn"


def first_user_text(body: Any) -> str:
    """The text of the request's first user message ("" when it has none)."""
    users = (message for message in _messages(body) if _role(message) == "user")
    return message_text(next(users, None))


def turn_index(body: Any) -> int:
    """The 0-based turn a request asks for: how many assistant messages it carries, counted on
    from the turns a summary in a message of another role says came before it (2.x), less the
    answers cut mid-stream that 2.x keeps and asks to continue (a retry of the same turn)."""
    messages, start, before = _messages(body), 0, 0
    for index, message in enumerate(messages):
        if _role(message) != "assistant" and (said := _TURNS_SO_FAR.search(message_text(message))):
            start, before = index + 1, int(said.group(1))
    answers = sum(_role(message) == "assistant" for message in messages[start:])
    cut = sum(
        _role(message) == "user" and message_text(message).startswith(_CONTINUE)
        for message in messages[start:]
    )
    return before + answers - cut


class Dispatcher:
    """Thread-safe attempt counters that turn request bodies into `Decision`s."""

    def __init__(self, script: Script, *, error_after: tuple[int, int] | None = None) -> None:
        self._script = script
        self._title_turn = Turn(text=(script.title,))
        self._error_after = error_after
        self._lock = threading.Lock()
        # Keyed by (branch position, or -1 for the main turns; turn index).
        self._attempts: dict[tuple[int, int], int] = {}
        self._agent_requests = 0

    def rescript(self, script: Script, *, reset: bool = False) -> None:
        """Serve `script` from the next request on; the attempt counters stay unless `reset`."""
        with self._lock:
            self._script = script
            self._title_turn = Turn(text=(script.title,))
            if reset:
                self._attempts.clear()
                self._agent_requests = 0

    def decide(self, body: Any) -> Decision:
        """The answer for one chat request; agent requests advance the counters."""
        kind = classify(body)
        if kind != "turn":
            summary = Turn(text=(SUMMARY_TEXT.format(turns=turn_index(body)),))
            turn = self._title_turn if kind == "title" else summary
            return Decision(kind=kind, turn_index=None, attempt=None, turn=turn, fault=None)
        index = turn_index(body)
        found = self._script.branch_for(first_user_text(body))
        position, branch = found if found else (-1, None)
        with self._lock:
            attempt = self._attempts.get((position, index), 0) + 1
            self._attempts[position, index] = attempt
            self._agent_requests += 1
            served = self._agent_requests
        source = branch or self._script
        turn = fitted(source.turn_at(index), body)  # the tool names of the line asking
        fault = (
            self._blanket_fault(served)
            or self._past_the_script(index, len(source.turns))
            or select_fault(turn, attempt)
        )
        match = branch.match if branch else None
        return Decision(
            kind=kind, turn_index=index, attempt=attempt, turn=turn, fault=fault, branch=match
        )

    def _past_the_script(self, index: int, turns: int) -> Fault | None:
        # A strict script has no answer past its last turn: say so, loudly (HTTP 400).
        if not self._script.strict or index < turns:
            return None
        message = f"mock (strict): no turn {index + 1} in the script, it has {turns}"
        return Fault(kind="400", attempts=None, message=message)

    def _blanket_fault(self, served: int) -> Fault | None:
        # --429-after/--500-after N: the first N agent requests follow the script.
        if self._error_after is None or served <= self._error_after[1]:
            return None
        status, count = self._error_after
        message = f"mock: every agent request after the first {count} gets {status}"
        return Fault(kind=str(status), attempts=None, retry_after=1.0, message=message)
