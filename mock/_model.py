"""The parsed script: immutable values the server and the chunk builder read.

A `Script` holds the main agent-loop turns plus optional subagent `Branch`es: a conversation
whose first user message contains a branch's `match` is answered from that branch's turns.
"""

from __future__ import annotations

from dataclasses import dataclass

# Fault kinds answered with an HTTP error instead of a stream.
ERROR_KINDS = ("429", "500", "400")
# Fault kinds that shape the stream itself (streamed requests only).
STREAM_KINDS = ("stall", "cut", "drip", "malformed")
FAULT_KINDS = ERROR_KINDS + STREAM_KINDS

DEFAULT_TITLE = "Mock session"


class ScriptError(ValueError):
    """A script is invalid; the message is one line: `<source>: <path>: <problem>`."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        super().__init__(f"{source}: {path}: {problem}")
        self.source = source
        self.path = path
        self.problem = problem


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """One function call the assistant makes; `arguments` is the exact JSON text sent."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Token counts to report; None means computed from the turn and the request."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """A failure injected on some attempts of a turn (`attempts=None` means every attempt)."""

    kind: str
    attempts: frozenset[int] | None
    retry_after: float | None = None
    retry_after_ms: float | None = None  # `retry-after-ms`, which opencode prefers
    headers: tuple[tuple[str, str], ...] = ()  # more response headers (`x-ratelimit-*`, ...)
    message: str | None = None
    after_chunks: int = 0
    delay: float = 0.0

    def applies_to(self, attempt: int) -> bool:
        """Whether this fault fires on the given 1-based attempt."""
        return self.attempts is None or attempt in self.attempts


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One assistant answer: reasoning, text and tool-call deltas, plus its faults."""

    text: tuple[str, ...] = ()
    reasoning: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = Usage()
    finish: str | None = None
    delay: float = 0.0  # seconds between two chunks (`tokens_per_second` sets it too)
    first_token: float = 0.0  # seconds before the first chunk (time to first token)
    jitter: float = 0.0  # each wait varies by up to this fraction, either way
    faults: tuple[Fault, ...] = ()

    @property
    def finish_reason(self) -> str:
        """The `finish_reason` of the last chunk: explicit, else from the tool calls."""
        if self.finish is not None:
            return self.finish
        return "tool_calls" if self.tool_calls else "stop"


@dataclass(frozen=True, slots=True, kw_only=True)
class Branch:
    """The turns for subagent conversations whose first user message contains `match`."""

    match: str
    turns: tuple[Turn, ...]

    def turn_at(self, index: int) -> Turn:
        """The turn for a 0-based index; past the end the last turn repeats."""
        return self.turns[min(index, len(self.turns) - 1)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Script:
    """A whole script: the agent-loop turns, the subagent branches and the title."""

    turns: tuple[Turn, ...]
    title: str = DEFAULT_TITLE
    subagents: tuple[Branch, ...] = ()
    strict: bool = False  # past the last turn: an error, not the last turn again

    def turn_at(self, index: int) -> Turn:
        """The turn for a 0-based index; past the end the last turn repeats."""
        return self.turns[min(index, len(self.turns) - 1)]

    def branch_for(self, first_user_text: str) -> tuple[int, Branch] | None:
        """The first branch (with its position) whose `match` is in the text, if any."""
        for position, branch in enumerate(self.subagents):
            if branch.match in first_user_text:
                return position, branch
        return None


def select_fault(turn: Turn, attempt: int) -> Fault | None:
    """The first of the turn's faults that fires on this attempt, if any."""
    return next((fault for fault in turn.faults if fault.applies_to(attempt)), None)
