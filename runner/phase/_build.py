"""Builds a parsed phase file into a `PhaseSpec`, section by section; paths resolve here."""

from __future__ import annotations

import glob
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

from runner.phase._check import (
    Invalid,
    amount,
    at,
    at_least,
    choice,
    count,
    duration,
    env_names,
    expected,
    flag,
    identifier,
    keys,
    loopback_url,
    model,
    names,
    optional,
    render_output_path,
    resolve_path,
    show,
    text,
)
from runner.phase._prompt import prompt_of, variables_of
from runner.phase._schema import mock_script, output_schema
from runner.phase._spec import (
    DEFAULT_RESULT,
    DEFAULT_TRANSCRIPT,
    Budgets,
    DoneChecks,
    FrontMatterCheck,
    OutputOptions,
    Permissions,
    PhaseSpec,
    ServerOptions,
    Timeouts,
    default_feedback,
)

SECTIONS = {
    "permissions": ("default", "allow", "deny", "feedback"),
    "done": ("artifacts", "frontmatter", "command"),
    "budgets": (
        *("resumes", "repairs", "provider_retries"),
        *("cost_usd", "tokens", "steps", "repeats", "compactions"),
    ),
    "timeouts": ("phase", "stall", "start", "outage", "silent"),
    "server": ("attach", "opencode", "isolate", "recycle_after", "recycle_rss_mib", "spare"),
    "output": ("transcript", "result"),
}
TOP_KEYS = (
    *("name", "label", "prompt", "prompt_file", "vars", "agent", "model", "variant"),
    *("directory", "thinking", "opencode_config", "output_schema", "mock", "secrets"),
    *SECTIONS,
)
# A nested key written at the top level (`resumes: 3`) is suggested with its section.
_STRAYS = {leaf: f"{section}.{leaf}" for section, leaves in SECTIONS.items() for leaf in leaves}
_SCALARS: dict[str, Callable[[Any], Any]] = {
    "agent": optional(text),
    "model": optional(model),
    "variant": optional(text),
    "thinking": flag,
}
_BUDGETS = {
    **dict.fromkeys(("resumes", "repairs", "provider_retries", "compactions"), count),
    "cost_usd": amount,
    "tokens": at_least(1),
    "steps": at_least(1),
    "repeats": at_least(2),
}
_TIMEOUTS = dict.fromkeys(SECTIONS["timeouts"], duration)


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What building needs besides the data: where the file is, HOME, the clock, --var."""

    source: str
    base_dir: Path
    home: str | None
    now: datetime
    extra_vars: Mapping[str, str] = field(default_factory=dict)


def build(data: Any, ctx: Context) -> PhaseSpec:
    """The whole phase file, checked; raises `Invalid` at the first problem."""
    top = _top_level(data)
    name = at("name", identifier, _required(top, "name"))
    variables = {**at("vars", variables_of, top.get("vars")), **ctx.extra_vars}
    prompt, prompt_file = prompt_of(top, ctx.base_dir, ctx.home, variables)
    scalars = {key: at(key, check, top[key]) for key, check in _SCALARS.items() if key in top}
    return PhaseSpec(
        source=ctx.source,
        name=name,
        label=at("label", text, top.get("label", name)),
        prompt=prompt,
        prompt_file=prompt_file,
        vars=MappingProxyType(variables),
        secrets=at("secrets", env_names, top.get("secrets")),
        directory=at("directory", partial(_directory, ctx=ctx), top.get("directory", ".")),
        **scalars,
        **_sections(top, ctx, name),
    )


def _top_level(data: Any) -> dict:
    if data is None:
        raise Invalid("the file is empty (a phase needs at least name and prompt)")
    if not isinstance(data, dict):
        raise Invalid(f"expected a mapping at the top level, got {show(data)}")
    return keys(data, TOP_KEYS, _STRAYS)


def _required(data: dict, key: str) -> Any:
    if key not in data:
        raise Invalid("missing required key", key)
    return data[key]


def _sections(top: dict, ctx: Context, name: str) -> dict[str, Any]:
    def section(key: str, check: Callable[[Any], Any]) -> Any:
        return at(key, check, top.get(key))

    return {
        "permissions": section("permissions", _permissions),
        "done": section("done", _done),
        "budgets": section("budgets", partial(_simple, table=_BUDGETS, cls=Budgets)),
        "timeouts": section("timeouts", partial(_simple, table=_TIMEOUTS, cls=Timeouts)),
        "server": section("server", partial(_server, ctx=ctx)),
        "opencode_config": section("opencode_config", optional(_opencode_config)),
        "mock": section("mock", optional(partial(mock_script, base=ctx.base_dir, home=ctx.home))),
        "output_schema": section(
            "output_schema", optional(partial(output_schema, base=ctx.base_dir, home=ctx.home))
        ),
        "output": section("output", partial(_output, ctx=ctx, name=name)),
    }


def _simple(value: Any, *, table: dict[str, Callable[[Any], Any]], cls: type) -> Any:
    data = keys(value, tuple(table))
    return cls(**{key: at(key, check, data[key]) for key, check in table.items() if key in data})


def _permissions(value: Any) -> Permissions:
    data = keys(value, SECTIONS["permissions"])
    default = at("default", choice("reject", "allow"), data.get("default", "reject"))
    allow = at("allow", names, data.get("allow"))
    deny = at("deny", names, data.get("deny"))
    if both := sorted(set(allow) & set(deny)):
        raise Invalid(f"{both[0]!r} is also in permissions.allow", "deny")
    feedback = default_feedback(default)
    if "feedback" in data:
        feedback = at("feedback", optional(text), data["feedback"])
    return Permissions(default=default, allow=allow, deny=deny, feedback=feedback)


def _done(value: Any) -> DoneChecks:
    data = keys(value, SECTIONS["done"])
    return DoneChecks(
        artifacts=at("artifacts", names, data.get("artifacts")),
        frontmatter=at("frontmatter", _frontmatter, data.get("frontmatter")),
        command=at("command", optional(text), data.get("command")),
    )


def _frontmatter(value: Any) -> tuple[FrontMatterCheck, ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        return (_one_frontmatter(value),)
    if isinstance(value, list):
        return tuple(at(f"[{i}]", _one_frontmatter, item) for i, item in enumerate(value))
    raise expected("a mapping {files, required} or a list of them", value)


def _one_frontmatter(value: Any) -> FrontMatterCheck:
    data = keys(value, ("files", "required"))
    globs = at("files", names, _required(data, "files"))
    if not globs:
        raise Invalid("expected at least one glob", "files")
    return FrontMatterCheck(globs=globs, required=at("required", names, data.get("required")))


_SERVER = ServerOptions()  # the defaults


def _server(value: Any, *, ctx: Context) -> ServerOptions:
    data = keys(value, SECTIONS["server"])
    return ServerOptions(
        attach=at("attach", optional(loopback_url), data.get("attach")),
        opencode=at("opencode", optional(partial(_binary, ctx=ctx)), data.get("opencode")),
        isolate=at("isolate", flag, data.get("isolate", False)),
        recycle_after=at(
            "recycle_after", optional(at_least(1)), data.get("recycle_after", _SERVER.recycle_after)
        ),
        recycle_rss_mib=at(
            "recycle_rss_mib",
            optional(amount),
            data.get("recycle_rss_mib", _SERVER.recycle_rss_mib),
        ),
        spare=at("spare", _spare, data.get("spare", _SERVER.spare)),
    )


def _spare(value: Any) -> int:
    """0 or 1: whether a recycled server's successor starts ahead of need."""
    if isinstance(value, bool) or value not in (0, 1):
        raise Invalid(f"expected 0 or 1, got {value!r}")
    return int(value)


def _binary(value: Any, *, ctx: Context) -> str:
    """A bare name is looked up on PATH later; anything with a slash must exist now."""
    raw = text(value)
    if "/" not in raw and not raw.startswith("~"):
        return raw
    path = resolve_path(raw, ctx.base_dir, ctx.home)
    if not path.is_file():
        raise Invalid(f"no such file: {path}")
    return str(path)


def _opencode_config(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise Invalid(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise expected("a mapping (or a JSON object in a string)", value)
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise Invalid(f"not representable as JSON: {exc}") from None


def _output(value: Any, *, ctx: Context, name: str) -> OutputOptions:
    data = keys(value, SECTIONS["output"])
    render = partial(output_path, base=ctx.base_dir, home=ctx.home, name=name, now=ctx.now)
    result = data.get("result", DEFAULT_RESULT)
    return OutputOptions(
        transcript=at("transcript", render, data.get("transcript", DEFAULT_TRANSCRIPT)),
        result=at("result", render, result),
        earlier=every_run(at("result", partial(render, now=ANY_TIME), result)),
    )


ANY_TIME = "RUNNER-ANY-TIME"  # `{time}` rendered for `every_run`


def every_run(path: Path) -> str:
    """A glob of every run's file from `path` rendered with `ANY_TIME`: the rest matched as is."""
    return glob.escape(str(path)).replace(ANY_TIME, "*")


def output_path(
    value: Any, *, base: Path, home: str | None, name: str, now: datetime | str
) -> Path:
    """An output template rendered for this run and resolved against `base`."""
    try:
        rendered = render_output_path(text(value), name, now)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return resolve_path(rendered, base, home)


def _directory(value: Any, *, ctx: Context) -> Path:
    path = resolve_path(text(value), ctx.base_dir, ctx.home)
    if not path.exists():
        raise Invalid(f"no such directory: {path}")
    if not path.is_dir():
        raise Invalid(f"not a directory: {path}")
    return path
