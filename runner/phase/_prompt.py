"""The prompt of a phase: inline or from a file, with `${NAME}` variables substituted as text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.phase._check import (
    VAR_NAME,
    Invalid,
    at,
    did_you_mean,
    expected,
    resolve_path,
    segment,
    text,
)

# `$${NAME}` is the escape for a literal `${NAME}`; anything else with a `$` is plain text.
_PLACEHOLDER = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def variables_of(value: Any) -> dict[str, str]:
    """`vars`: names to scalars, as the text each name stands for."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise expected("a mapping of names to values", value)
    return {at(segment(k), var_name, k): at(segment(k), _scalar, v) for k, v in value.items()}


def var_name(value: Any) -> str:
    """A variable name: letters, digits and '_', not starting with a digit."""
    if not isinstance(value, str) or not VAR_NAME.fullmatch(value):
        raise Invalid("invalid variable name (letters, digits and '_', not starting with a digit)")
    return value


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise expected("a string, number or boolean", value)


def prompt_of(
    top: dict, base_dir: Path, home: str | None, variables: Mapping[str, str]
) -> tuple[str, Path | None]:
    """The prompt text (variables substituted) and the file it came from, if any."""
    if "prompt" in top and "prompt_file" in top:
        raise Invalid("give either prompt or prompt_file, not both", "prompt")
    if "prompt" in top:
        return at("prompt", lambda v: substitute(text(v), variables), top["prompt"]), None
    if "prompt_file" not in top:
        raise Invalid("missing required key (give prompt or prompt_file)", "prompt")
    path = at("prompt_file", lambda v: resolve_path(text(v), base_dir, home), top["prompt_file"])
    return at("prompt_file", lambda p: substitute(_read_prompt(p), variables), path), path


def _read_prompt(path: Path) -> str:
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Invalid(f"no such file: {path}") from None
    except OSError as exc:
        raise Invalid(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise Invalid(f"{path} is not UTF-8 text") from None
    if not content.strip():
        raise Invalid(f"{path} is empty")
    return content


def substitute(template: str, variables: Mapping[str, str]) -> str:
    """`${NAME}` replaced by its value as plain text; `$${NAME}` left as a literal `${NAME}`."""

    def replace(match: re.Match[str]) -> str:
        escaped, name = match.groups()
        if escaped:
            return "${" + name + "}"
        if name not in variables:
            guess = did_you_mean(name, list(variables))
            hint = f"did you mean ${{{guess}}}?" if guess else f"set it in vars or --var {name}=..."
            raise Invalid(f"unknown variable ${{{name}}} ({hint})")
        return variables[name]

    result = _PLACEHOLDER.sub(replace, template)
    if not result.strip():
        raise Invalid("the prompt is empty once vars are substituted")
    return result
