"""Make `opencode run --format json` and `python -m runner --json` outputs comparable (pure).

Theory of operation. Both print one JSON object per line in the same shapes. What differs by
nature between two runs is taken out: times and snapshot hashes go; the places of one run (its
temporary project, its mock's URL) become names (`<project>`, `<mock>`); long strings are
shortened (with their length and a digest, so a lost tail still shows); each run of `tool_use`
lines is put in a canonical order (tools called together finish in any order); then ids
become placeholders numbered by first appearance, so "these two parts share a message"
survives. What differs between the two tools on purpose is named once, in `LEGITIMATE`, with
why. Anything else that differs is a parity bug, shown as a unified diff of the normalised
lines.
"""

from __future__ import annotations

import hashlib
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
            key: _clean_item(key, item, places)
            for key, item in value.items()
            if key not in VOLATILE
        }
    if isinstance(value, list):
        return [_clean(item, places) for item in value]
    if isinstance(value, str):
        for place, name in places.items():
            value = value.replace(place, name)
        return value if len(value) <= MAX_STRING else _shortened(value)
    return value


def _clean_item(key: str, item: Any, places: dict[str, str]) -> Any:
    if key == "snapshot" and isinstance(item, str):
        return SNAPSHOT
    if key == "responseHeaders" and isinstance(item, dict):
        item = {name: v for name, v in item.items() if name.lower() not in VOLATILE_HEADERS}
    return _clean(item, places)


def _shortened(text: str) -> str:
    """The start of a long string, its length and a digest of all of it (ids masked): a lost or
    doubled tail still shows."""
    digest = hashlib.sha256(_ID.sub("<id>", text).encode()).hexdigest()[:12]
    return f"{text[:MAX_STRING]}… ({len(text)} chars, sha256 {digest})"


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
    """Sort each run of consecutive `tool_use` lines canonically: tools called together finish
    in any order. Everything else keeps its order."""
    out: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []
    for line in lines:
        if line.get("type") == "tool_use":
            run.append(line)
            continue
        out.extend(sorted(run, key=_without_ids))
        run = []
        out.append(line)
    out.extend(sorted(run, key=_without_ids))
    return out
