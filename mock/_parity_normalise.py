"""Make `opencode run --format json` and `python -m runner --json` outputs comparable (pure).

Theory of operation. Both print one JSON object per line in the same shapes. What differs by
nature between two runs is taken out: times and snapshot hashes go; the places of one run (its
temporary project, its mock's URL) become names (`<project>`, `<mock>`); long strings are
truncated; the lines inside one step are put in a canonical order (the two tools may finalise
the parts of one step in a different order); then ids become placeholders numbered by first
appearance, so "these two parts share a message" survives. What differs between the two tools
on purpose is named once, in `LEGITIMATE`, with why. Anything else that differs is a parity
bug, shown as a unified diff of the normalised lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

# Where runner and `opencode run` legitimately differ: line types one of them prints alone.
LEGITIMATE = {
    "runner.result": "the runner's verdict line: what it adds to `opencode run`'s output",
    "done": "`opencode run`'s end-of-output marker, when it prints one; the runner ends with "
    "`runner.result` instead",
}
# Keys whose values are different in every run by nature.
VOLATILE = frozenset({"timestamp", "time"})
# Response headers a provider error carries that differ between runs.
VOLATILE_HEADERS = frozenset({"date"})
SNAPSHOT = "<snapshot>"
MAX_STRING = 300
# Ids opencode makes up, whole or inside a string (a task's output names its child session);
# the mock's `call_…` ids are the script's own: they stay.
_ID = re.compile(r"\b(ses|msg|prt|per|que)_[A-Za-z0-9]{12,}\b")


def parse(text: str) -> list[dict[str, Any]]:
    """The JSON objects of an output, one a line (other lines are ignored)."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def normalise(lines: Iterable[dict[str, Any]], places: dict[str, str]) -> list[dict[str, Any]]:
    """The lines with run-specific values replaced and each step in a canonical order; ids are
    numbered last, in that order, so two runs that finalised a step's parts in a different
    order number them alike."""
    kept = [_clean(line, places) for line in lines if line.get("type") not in LEGITIMATE]
    ids: dict[str, str] = {}
    return [_rename(line, ids) for line in _order_steps(kept)]


def dumped(lines: list[dict[str, Any]]) -> list[str]:
    """The normalised lines as text, one key a line, for a readable diff."""
    return [
        text for line in lines for text in json.dumps(line, indent=1, sort_keys=True).splitlines()
    ]


def _clean(value: Any, places: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            key: SNAPSHOT if key == "snapshot" else _clean(item, places)
            for key, item in value.items()
            if key not in VOLATILE and key.lower() not in VOLATILE_HEADERS
        }
    if isinstance(value, list):
        return [_clean(item, places) for item in value]
    if isinstance(value, str):
        for place, name in places.items():
            value = value.replace(place, name)
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + "…"
    return value


def _rename(value: Any, ids: dict[str, str]) -> Any:
    """Ids (`ses_…`, `msg_…`, `prt_…`) as `<kind N>`, N by first appearance."""
    if isinstance(value, dict):
        return {key: _rename(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [_rename(item, ids) for item in value]
    if isinstance(value, str):
        return _ID.sub(
            lambda m: ids.setdefault(m.group(0), f"<{m.group(1)} {len(ids) + 1}>"), value
        )
    return value


def _without_ids(line: dict[str, Any]) -> str:
    """A sort key blind to ids (they differ between runs)."""
    return _ID.sub("<id>", json.dumps(line, sort_keys=True))


def _order_steps(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sort the lines between each `step_start` and its `step_finish` canonically."""
    out: list[dict[str, Any]] = []
    inside: list[dict[str, Any]] | None = None
    for line in lines:
        kind = line.get("type")
        if kind == "step_start":
            out.extend(inside or [])
            out.append(line)
            inside = []
        elif kind == "step_finish" and inside is not None:
            out.extend(sorted(inside, key=_without_ids))
            out.append(line)
            inside = None
        elif inside is not None:
            inside.append(line)
        else:
            out.append(line)
    out.extend(inside or [])
    return out
