"""Make `opencode run --format json` and `python -m runner --json` outputs comparable (pure).

Theory of operation. Both print one JSON object per line in the same shapes. What differs by
nature between two runs is taken out: times and snapshot hashes go; the places of one run (its
temporary project, its mock's URL) become names (`<project>`, `<mock>`); long strings are
shortened (with their length and a digest, so a lost tail still shows); each run of `tool_use`
lines is put in a canonical order (tools called together finish in any order); then ids
become placeholders numbered by first appearance, so "these two parts share a message"
survives. What differs between the two tools on purpose is named once, in `LEGITIMATE`, with
why, and so is what 2.x's `opencode run` prints in shapes of its own (`SHAPES_2`: the runner
prints 1.x's shapes on both lines). Anything else that differs is a parity bug, shown as a
unified diff of the normalised lines.
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
# Where 2.x's `opencode run --format json` prints shapes of its own (`../shared/opencode/
# PROTOCOL-2.md` §8), taken to the runner's (1.x's) on both sides before the comparison.
SHAPES_2 = {
    "tool_use ids": "`run` names the call `id` and the part `partID`; the runner, as 1.x, "
    "`callID` and `id`",
    "tool_use metadata and title": "`run` rebuilds a tool from the message list (its metadata "
    "is the stored state: content, provider call, raw input; its title the tool's name); the "
    "runner shows what the stream said: both left out",
    "step_finish tokens.total": "2.x sends no total; the runner adds one up: left out",
    "the closing step_finish": "`run` rebuilds the turn from the message list after it ends "
    "and leaves the last step_finish out more often than not: a closing one is left out",
    "error": "2.x's `{type, message, status, response}` against the runner's 1.x "
    "`{name, data}`: compared by message and status",
    "grep's file order": "2.x's grep (ripgrep) lists the matching files in the order its "
    "threads find them, not by modification time as 1.x's does: its file blocks are sorted",
}
# Keys whose values are different in every run by nature.
VOLATILE = frozenset({"timestamp", "time"})
# Response headers a provider error carries that differ between runs.
VOLATILE_HEADERS = frozenset({"date"})
SNAPSHOT = "<snapshot>"
MAX_STRING = 300
# Ids opencode makes up, whole or inside a string (a task's output names its child session);
# the mock's `call_…` ids are the script's own: they stay.
# The runner's own part ids on 2.x (`prt_<message id>_<kind>_<key>`) are ids too.
_ID = re.compile(r"\b(ses|msg|prt|per|que)_(?:msg_[A-Za-z0-9]{12,}_[a-z]+_\w+|[A-Za-z0-9]{12,})\b")


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


def normalise(
    lines: Iterable[dict[str, Any]], places: dict[str, str], *, line: int = 1
) -> list[dict[str, Any]]:
    """The lines with run-specific values replaced and each step in a canonical order; ids are
    numbered last, in that order, so two runs that finalised a step's parts in a different
    order number them alike."""
    kept = [line for line in lines if line.get("type") not in LEGITIMATE]
    kept = [_clean(line, places) for line in (_as_1x(kept) if line == 2 else kept)]
    ids: dict[str, str] = {}
    return [_rename(line, ids) for line in _order_steps(kept)]


def _as_1x(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """2.x's `opencode run` lines and the runner's on 2.x, in one shape (`SHAPES_2`)."""
    out = [_line_as_1x(line) for line in lines]
    if out and out[-1].get("type") == "step_finish":
        out.pop()
    return out


def _line_as_1x(line: dict[str, Any]) -> dict[str, Any]:
    kind, part = line.get("type"), line.get("part")
    if kind == "tool_use" and isinstance(part, dict):
        part = dict(part)
        if "partID" in part:
            part["callID"], part["id"] = part.pop("id", None), part.pop("partID")
        state = part.get("state")
        if isinstance(state, dict):
            state = {k: v for k, v in state.items() if k not in ("metadata", "title")}
            if part.get("tool") == "grep" and isinstance(state.get("output"), str):
                state["output"] = _files_sorted(state["output"])
            part["state"] = state
        return {**line, "part": part}
    if kind == "step_finish" and isinstance(part, dict) and isinstance(part.get("tokens"), dict):
        tokens = {k: v for k, v in part["tokens"].items() if k != "total"}
        return {**line, "part": {**part, "tokens": tokens}}
    if kind == "error" and isinstance(line.get("error"), dict):
        return {**line, "error": _error_2(line["error"])}
    return line


def _files_sorted(output: str) -> str:
    """A grep output's file blocks (`path:` and its lines, three newlines apart) in path order."""
    head, sep, rest = output.partition("\n")
    if not head.startswith("Found ") or not sep:
        return output
    blocks = rest.rstrip("\n").split("\n\n\n")
    return head + sep + "\n\n\n".join(sorted(blocks)) + rest[len(rest.rstrip("\n")) :]


def _error_2(error: dict[str, Any]) -> dict[str, Any]:
    """An error line's message and status, from 2.x's shape or 1.x's."""
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    message = error.get("message", data.get("message"))
    return {"message": message, "status": error.get("status", data.get("statusCode"))}


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
    """Ids (`ses_…`, `msg_…`, `prt_…`) as `<kind N>`, N by first appearance among its kind
    (the runner's parts on 2.x list their keys in another order than `run`'s)."""
    if isinstance(value, dict):
        return {key: _rename(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [_rename(item, ids) for item in value]
    if isinstance(value, str):
        return _ID.sub(lambda m: _name(m.group(0), m.group(1), ids), value)
    return value


def _name(found: str, kind: str, ids: dict[str, str]) -> str:
    if found not in ids:
        ids[found] = f"<{kind} {sum(name.startswith(f'<{kind} ') for name in ids.values()) + 1}>"
    return ids[found]


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
