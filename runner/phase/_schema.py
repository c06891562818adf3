"""The phase keys that name a file of another format: `output_schema` and `mock`.

`output_schema` is a JSON Schema for the phase's structured result.

An inline mapping, or the path of a `.json` file (relative to the phase file) holding one. It
must describe an object (opencode offers it to the model as the parameters of a tool named
`StructuredOutput`, and tool parameters are objects) and be a valid schema of its own draft
(`$schema`, else 2020-12), checked here so a typo fails before anything starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.phase._check import Invalid, expected, resolve_path, text


def output_schema(value: Any, *, base: Path, home: str | None) -> dict[str, Any]:
    """The schema, loaded and checked; `Invalid` names the problem."""
    import jsonschema  # 0.1 s: only for phases that have a schema, not before opencode starts

    if isinstance(value, str):
        value = _read(resolve_path(value, base, home))
    if not isinstance(value, dict):
        raise expected("a JSON Schema (a mapping) or the path of a .json file", value)
    try:
        schema = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise Invalid(f"not representable as JSON: {exc}") from None
    if schema.get("type") != "object":
        raise Invalid('must describe an object ("type": "object"): the result is a tool\'s input')
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise Invalid(
            f"not a valid JSON Schema: {exc.message}" + (f" (at {where})" if where else "")
        ) from None
    return schema


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise Invalid(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise Invalid(f"{path} is not JSON: {exc}") from None


def mock_script(value: Any, *, base: Path, home: str | None) -> Path:
    """`mock`: a mock LLM script (JSON or YAML) that loads; its absolute path."""
    from mock import ScriptError, load_script  # the embedded default LLM (runner._mock)

    path = resolve_path(text(value), base, home)
    if not path.is_file():
        raise Invalid(f"no such file: {path}")
    try:
        load_script(path)
    except ScriptError as exc:
        raise Invalid(f"not a mock script: {exc}") from None
    return path
