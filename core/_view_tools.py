"""How a final tool part reads on the terminal: one head line, then a few detail lines.

Each tool has a describer `(input, state, ctx) -> (key, outcome, details)`: `key` is the input a
person recognises the call by, `outcome` what came of it, `details` extra lines (bash output,
the todo list). Unknown tools fall back to their name and compact JSON input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

OUTPUT_LINES = 5  # bash output lines shown before "… N more lines"
KEY_WIDTH = 100  # key inputs and generic JSON are clipped to this many characters
DETAIL_INDENT = "    "

Styled = tuple[str, str]  # (text, style name)
Described = tuple[str, str | None, list[str]]
_Describer = Callable[[dict[str, Any], dict[str, Any], str | None], Described]

_TODO_MARKS = {"pending": "[ ]", "in_progress": "[~]", "completed": "[x]", "cancelled": "[-]"}
_READ_LINE = re.compile(r"^\d+: ", re.MULTILINE)
_FOUND = re.compile(r"Found (\d+) match")


def clip(text: str, width: int = KEY_WIDTH) -> str:
    """One line of at most `width` characters: the first line, cut with an ellipsis."""
    lines = text.strip().splitlines() or [""]
    first = lines[0] + (" …" if len(lines) > 1 else "")
    return first if len(first) <= width else first[: width - 1] + "…"


def compact(value: Any, width: int = KEY_WIDTH) -> str:
    """Compact JSON of `value`, clipped to `width` characters."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def rel(path: Any, directory: str | None) -> str:
    """`path` relative to the phase directory when it lies inside it."""
    text = str(path or "")
    if directory and text.startswith(directory.rstrip("/") + "/"):
        return text[len(directory.rstrip("/")) + 1 :]
    return text


def tool_lines(part: dict[str, Any], directory: str | None) -> list[Styled]:
    """The lines of one final tool part (completed or error)."""
    name = str(part.get("tool") or "tool")
    state = part.get("state") if isinstance(part.get("state"), dict) else {}
    inputs = state.get("input") if isinstance(state.get("input"), dict) else {}
    key, outcome, details = _DESCRIBERS.get(name, _generic)(inputs, state, directory)
    head = f"{name} {key}".rstrip()
    if state.get("status") == "error":
        error = str(state.get("error") or "failed")
        return [(f"✗ {head} → error: {clip(error, 300)}", "tool.error")]
    failed = _exit_code(state) not in (None, 0)
    glyph, style = ("✗", "tool.error") if failed else ("✓", "tool.ok")
    text = f"{glyph} {head}" + (f" → {outcome}" if outcome else "")
    return [(text, style), *((DETAIL_INDENT + line, "dim") for line in details)]


def _exit_code(state: dict[str, Any]) -> Any:
    metadata = state.get("metadata")
    return metadata.get("exit") if isinstance(metadata, dict) else None


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 file`, `2 files`, `1,024 bytes`."""
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def _items(value: Any) -> list[Any]:
    """A list from the model's tool input, whatever it actually sent."""
    return value if isinstance(value, list) else []


def _metadata(state: dict[str, Any]) -> dict[str, Any]:
    metadata = state.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _read(inputs: dict[str, Any], state: dict[str, Any], directory: str | None) -> Described:
    display = _metadata(state).get("display")
    if isinstance(display, dict) and isinstance(display.get("lineEnd"), int):
        count = display["lineEnd"] - int(display.get("lineStart") or 1) + 1
    else:
        count = len(_READ_LINE.findall(str(state.get("output") or "")))
    return rel(_path(inputs), directory), plural(count, "line"), []


def _write(inputs: dict[str, Any], _state: dict[str, Any], directory: str | None) -> Described:
    size = len(str(inputs.get("content") or "").encode("utf-8"))
    return rel(_path(inputs), directory), plural(size, "byte"), []


def _edit(inputs: dict[str, Any], state: dict[str, Any], directory: str | None) -> Described:
    diff = _metadata(state).get("filediff")
    outcome = None
    if isinstance(diff, dict) and "additions" in diff:
        outcome = f"+{diff.get('additions', 0)} -{diff.get('deletions', 0)}"
    return rel(_path(inputs), directory), outcome, []


def _bash(inputs: dict[str, Any], state: dict[str, Any], _directory: str | None) -> Described:
    code = _exit_code(state)
    metadata = _metadata(state)
    output = metadata.get("output", state.get("output"))
    lines = str(output or "").rstrip("\n").splitlines()
    if metadata.get("truncated") and metadata.get("outputPath"):
        # opencode kept the output's tail for the model and saved the whole of it: say where,
        # and show the last lines (where an error usually is), not the cut-off first ones.
        details = [f"… truncated by opencode; the full output is in {metadata['outputPath']}"]
        details += [clip(line, 200) if line.strip() else "" for line in lines[-OUTPUT_LINES:]]
    else:
        details = [clip(line, 200) if line.strip() else "" for line in lines[:OUTPUT_LINES]]
        if len(lines) > OUTPUT_LINES:
            details.append(f"… {len(lines) - OUTPUT_LINES} more lines")
    outcome = f"exit {code}" if code is not None else None
    return clip(str(inputs.get("command") or "")), outcome, details


def _grep(inputs: dict[str, Any], state: dict[str, Any], directory: str | None) -> Described:
    count = _metadata(state).get("matches")
    if not isinstance(count, int):
        found = _FOUND.search(str(state.get("output") or ""))
        count = int(found.group(1)) if found else 0
    where = f" in {rel(inputs['path'], directory)}" if inputs.get("path") else ""
    return clip(str(inputs.get("pattern") or "")) + where, plural(count, "match", "matches"), []


def _glob(inputs: dict[str, Any], state: dict[str, Any], directory: str | None) -> Described:
    count = _metadata(state).get("count")
    if not isinstance(count, int):
        output = str(state.get("output") or "")
        files = [line for line in output.splitlines() if line.strip()]
        count = 0 if output.startswith("No files found") else len(files)
    where = f" in {rel(inputs['path'], directory)}" if inputs.get("path") else ""
    return clip(str(inputs.get("pattern") or "")) + where, plural(count, "file"), []


def _todowrite(inputs: dict[str, Any], _state: dict[str, Any], _directory: str | None) -> Described:
    todos = [t for t in _items(inputs.get("todos")) if isinstance(t, dict)]
    done = sum(1 for t in todos if t.get("status") == "completed")
    lines = [f"{_TODO_MARKS.get(t.get('status'), '[?]')} {t.get('content', '')}" for t in todos]
    return "", f"{done}/{len(todos)} done", lines


def _task(inputs: dict[str, Any], _state: dict[str, Any], _directory: str | None) -> Described:
    agent = inputs.get("subagent_type") or inputs.get("agent")  # 1.x's name, 2.x's
    key = clip(str(inputs.get("description") or "")) + (f" ({agent})" if agent else "")
    return key, "subagent finished", []


def _webfetch(inputs: dict[str, Any], state: dict[str, Any], _directory: str | None) -> Described:
    size = len(str(state.get("output") or ""))
    return clip(str(inputs.get("url") or "")), f"{size:,} chars", []


def _question(inputs: dict[str, Any], _state: dict[str, Any], _directory: str | None) -> Described:
    asked = [q for q in _items(inputs.get("questions")) if isinstance(q, dict)]
    questions = [str(q.get("question", "")) for q in asked]
    return clip(" / ".join(questions)), "answered", []


def _generic(inputs: dict[str, Any], _state: dict[str, Any], _directory: str | None) -> Described:
    return (compact(inputs) if inputs else ""), None, []


_DESCRIBERS: dict[str, _Describer] = {
    "read": _read,
    "write": _write,
    "edit": _edit,
    "bash": _bash,
    "grep": _grep,
    "glob": _glob,
    "todowrite": _todowrite,
    "task": _task,
    "webfetch": _webfetch,
    "question": _question,
    # opencode 2.x's names of the same tools
    "shell": _bash,
    "subagent": _task,
}


def _path(inputs: dict[str, Any]) -> Any:
    """The file a tool works on: `filePath` on opencode 1.x, `path` on 2.x."""
    return inputs.get("filePath", inputs.get("path"))
