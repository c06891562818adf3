"""Guards of a long unattended run: spend budgets, loops and compactions (pure).

Theory of operation. `Guards.observe(effect)` reads every tracked effect of the session tree
and returns a `Breach` the first time a limit is passed, else None; the termination policy
aborts on it. What is watched:

- Spend over the whole tree, from each step's `step-finish` part (opencode writes a step's
  `cost` in USD and its `tokens` there, subagents' steps included): `cost_usd`, `tokens`
  (the step's `total`, else input + output + reasoning + cache), `steps`. Passing a budget (a
  figure above it) is `incomplete`: "budget spent: cost 0.60 USD of 0.50".
- Loops, per session, a verdict of `stalled` whose reason begins "looping:":
  - the same tool call (tool name and input) `repeats` times in a row (text between them does
    not break the row; another tool call does);
  - the same assistant text part `repeats` times in a row (a tool call breaks that row);
  - text repeating inside one streamed part: its last characters are one piece of at least
    `MIN_PERIOD` characters repeated `repeats` times, covering `MIN_SPAN` characters, the piece
    holding `MIN_WORDS` distinct words (a table, a rule or a column of numbers is no loop);
    checked every `CHECK_EVERY` characters on a bounded tail, so a long part costs little.
- Compactions (`session.compacted` of any session of the tree), counted; passing
  `compactions` is `incomplete`.

`totals()` gives the running figures for the result and the view.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from core import jsonfast
from core._tracker_effects import PartDelta, PartFinalized, Passthrough

__all__ = ["CHECK_EVERY", "MIN_PERIOD", "Breach", "GuardLimits", "Guards"]

MIN_PERIOD = 20  # a repeated piece shorter than this is not a loop (lists, tables, code)
MIN_SPAN = 400  # characters the repetition must cover (a rule of dashes is no loop)
MIN_WORDS = 3  # distinct words the repeated piece must hold (a row of zeros is no loop)
TAIL = 8192  # characters of a streamed part kept for the repetition check
CHECK_EVERY = 256  # characters streamed between two checks of a part
MAX_PARTS = 64  # streamed parts followed at once (the oldest is forgotten first)
_SHOWN = 60  # characters of a repeated text quoted in the reason
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardLimits:
    """The phase's `budgets` for spend, loops and compactions (None: unlimited)."""

    cost_usd: float | None = None
    tokens: int | None = None
    steps: int | None = None
    repeats: int = 5
    compactions: int | None = None


@dataclass(frozen=True, slots=True)
class Breach:
    """A limit passed: the verdict and the reason the phase ends with."""

    verdict: str
    reason: str


@dataclass(slots=True)
class _Row:
    """What one session repeated last, and how many times in a row."""

    tool: tuple[str, str] | None = None
    tool_count: int = 0
    text: str | None = None
    text_count: int = 0


class Guards:
    """Watches the session tree's effects for spent budgets, loops and compactions."""

    def __init__(self, limits: GuardLimits) -> None:
        self.limits = limits
        self.cost = 0.0
        self.tokens = 0
        self.steps = 0
        self.compactions = 0
        self._rows: dict[str, _Row] = {}
        self._streams: dict[str, list[Any]] = {}  # part id -> [pieces, characters unchecked]

    def totals(self) -> dict[str, Any]:
        """The running spend and compactions (the result's `spend`)."""
        return {
            "cost_usd": round(self.cost, 6),
            "tokens": self.tokens,
            "steps": self.steps,
            "compactions": self.compactions,
        }

    def observe(self, effect: Any) -> Breach | None:
        """Read one effect; a `Breach` when it passed a limit."""
        if isinstance(effect, PartDelta):
            return self._on_delta(effect)
        if isinstance(effect, PartFinalized):
            self._streams.pop(effect.part_id, None)
            if effect.part_type == "step-finish":
                return self._on_step(effect.part)
            if effect.part_type == "tool":
                return self._on_tool(effect.session_id, effect.part)
            if effect.part_type == "text" and effect.role != "user":
                return self._on_text(effect.session_id, effect.text or "")
        elif isinstance(effect, Passthrough) and effect.event_type == "session.compacted":
            self.compactions += 1
            return _over("compactions", self.compactions, self.limits.compactions, "{:d}")
        return None

    # -- spend -----------------------------------------------------------------------------------

    def _on_step(self, part: dict[str, Any]) -> Breach | None:
        self.steps += 1
        self.cost += _number(part.get("cost"))
        self.tokens += step_tokens(part.get("tokens"))
        limits = self.limits
        return (
            _over("cost", self.cost, limits.cost_usd, "{:.2f} USD")
            or _over("tokens", self.tokens, limits.tokens, "{:,d}")
            or _over("steps", self.steps, limits.steps, "{:d}")
        )

    # -- loops -----------------------------------------------------------------------------------

    def _on_tool(self, session_id: str, part: dict[str, Any]) -> Breach | None:
        state = part.get("state") if isinstance(part.get("state"), dict) else {}
        name = str(part.get("tool"))
        call = (name, jsonfast.sorted_keys(state.get("input")))
        row = self._rows.setdefault(session_id, _Row())
        row.tool_count = row.tool_count + 1 if row.tool == call else 1
        row.tool = call
        row.text = None  # a tool call breaks a row of texts
        row.text_count = 0
        if row.tool_count >= self.limits.repeats:
            shown = _quote(call[1])
            reason = f"looping: {name} {shown} called {row.tool_count} times in a row"
            return Breach("stalled", reason)
        return None

    def _on_text(self, session_id: str, text: str) -> Breach | None:
        seen = _words(text)
        if seen is None:
            return None
        row = self._rows.setdefault(session_id, _Row())
        row.text_count = row.text_count + 1 if row.text == seen[0] else 1
        row.text = seen[0]
        if row.text_count >= self.limits.repeats:
            reason = f"looping: the same text {row.text_count} times in a row: {_quote(seen[1])}"
            return Breach("stalled", reason)
        return None

    def _on_delta(self, effect: PartDelta) -> Breach | None:
        stream = self._streams.get(effect.part_id)
        if stream is None:
            if len(self._streams) >= MAX_PARTS:
                del self._streams[next(iter(self._streams))]
            stream = self._streams[effect.part_id] = [[], 0]
        pieces = stream[0]
        pieces.append(effect.delta)  # joined only at a check: a delta costs an append
        stream[1] += len(effect.delta)
        if stream[1] < CHECK_EVERY:
            return None
        tail = "".join(pieces)[-TAIL:]
        pieces[:] = [tail]
        stream[1] = 0
        piece = repeated_tail(tail, self.limits.repeats)
        if piece is None:
            return None
        return Breach("stalled", f"looping: text repeating {self.limits.repeats} times: {piece}")


def repeated_tail(text: str, repeats: int) -> str | None:
    """The piece (quoted) that the end of `text` repeats `repeats` times back to back, when it
    is at least `MIN_PERIOD` characters long; else None."""
    if repeats < 2 or len(text) < MIN_PERIOD * repeats:
        return None
    probe = text[-MIN_PERIOD:]
    end = len(text) - MIN_PERIOD
    at = text.rfind(probe, 0, end)
    while at >= 0:
        period = end - at
        if period * repeats > len(text):
            return None
        piece = text[-period:]
        if text.endswith(piece * repeats) and _prose(piece, period * repeats):
            return _quote(" ".join(piece.split()))
        at = text.rfind(probe, 0, at)
    return None


def _prose(piece: str, span: int) -> bool:
    """Is a repeated piece a model saying the same thing again (not a table, a rule, data)?"""
    words = {word for word in piece.split() if any(c.isalpha() for c in word)}
    return span >= MIN_SPAN and len(words) >= MIN_WORDS


def step_tokens(tokens: Any) -> int:
    """A step's tokens: opencode's `total`, else the sum of its kinds."""
    if not isinstance(tokens, dict):
        return 0
    total = tokens.get("total")
    if isinstance(total, int | float) and total > 0:
        return int(total)
    cache = tokens.get("cache") if isinstance(tokens.get("cache"), dict) else {}
    kinds = (tokens.get(k) for k in ("input", "output", "reasoning"))
    return int(sum(_number(v) for v in (*kinds, cache.get("read"), cache.get("write"))))


def _over(name: str, value: float, limit: float | None, shown: str) -> Breach | None:
    if limit is None or value <= limit:  # spent is passed: `steps: 40` allows 40 steps
        return None
    figure = shown.format(value)
    unit_less = shown.format(limit).replace(" USD", "")
    return Breach("incomplete", f"budget spent: {name} {figure} of {unit_less}")


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _words(text: str) -> tuple[str, str] | None:
    """A text's words, as a digest (equal for texts that differ only in white space) and the
    first of them to show; None without words. Word by word: a long text (a whole answer)
    is never split into a list of its words, nor kept."""
    digest = hashlib.blake2b(digest_size=16)
    shown = []
    size = 0
    for match in _WORD.finditer(text):
        word = match.group()
        digest.update(word.encode("utf-8", "surrogatepass") + b" ")
        if size <= _SHOWN:
            shown.append(word)
            size += len(word) + 1
    return (digest.hexdigest(), " ".join(shown)) if shown else None


def _quote(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…")
