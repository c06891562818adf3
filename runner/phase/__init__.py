"""Phase files (docs/phase-file.md): YAML in, a validated, frozen `PhaseSpec` out.

Theory of operation. `load_phase` reads the file (YAML with duplicate keys refused) and hands
the data to `parse_phase`, which checks it key by key (`_build`, `_check`), fills
in every default, resolves relative paths against the phase file's folder, substitutes
`${NAME}` variables in the prompt and renders the output paths, then applies the command-line
`Overrides`. Every problem, whatever its depth, ends as one `PhaseFileError` line:
`<file>: <key.path>: <problem>` for the file, `<--flag>: <problem>` for a flag.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import yaml

from core.errors import PhaseFileError
from runner.phase._build import ANY_TIME, Context, build, every_run, output_path
from runner.phase._check import (
    Invalid,
    amount,
    at_least,
    expected,
    flag,
    loopback_url,
    model,
    parse_duration,
    render_output_path,
    text,
)
from runner.phase._prompt import var_name
from runner.phase._schema import mock_script
from runner.phase._spec import (
    Budgets,
    DoneChecks,
    FrontMatterCheck,
    OutputOptions,
    Permissions,
    PhaseSpec,
    ServerOptions,
    Timeouts,
)

__all__ = [
    "Budgets",
    "DoneChecks",
    "FrontMatterCheck",
    "OutputOptions",
    "Overrides",
    "Permissions",
    "PhaseSpec",
    "ServerOptions",
    "Timeouts",
    "load_phase",
    "parse_duration",
    "parse_phase",
    "render_output_path",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Overrides:
    """Command-line flags that override the phase file for one run (None: not given)."""

    model: str | None = None
    agent: str | None = None
    vars: tuple[str, ...] = ()
    thinking: bool | None = None
    attach: str | None = None
    transcript: str | None = None
    result: str | None = None
    mock: str | None = None
    isolate: bool | None = None
    recycle_after: int | None = None
    recycle_rss_mib: float | None = None


def load_phase(
    path: str | Path,
    *,
    overrides: Overrides | None = None,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> PhaseSpec:
    """Read and validate a phase file; raise `PhaseFileError` with one line if anything is off."""
    source = str(path)
    data = _read_yaml(Path(path), source)
    return parse_phase(
        data,
        source=source,
        base_dir=Path(os.path.abspath(path)).parent,
        overrides=overrides,
        environ=environ,
        now=now,
    )


def parse_phase(
    data: Any,
    *,
    source: str,
    base_dir: Path,
    overrides: Overrides | None = None,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> PhaseSpec:
    """Validate already-parsed phase data as if read from `source` in the folder `base_dir`."""
    flags = overrides or Overrides()
    env = os.environ if environ is None else environ
    ctx = Context(
        source=source,
        base_dir=Path(os.path.abspath(base_dir)),
        home=env.get("HOME"),
        now=now or datetime.now(),
        extra_vars=dict(_flag("--var", _var_flag, item) for item in flags.vars),
    )
    try:
        spec = build(data, ctx)
    except Invalid as exc:
        raise PhaseFileError(f"{source}: {exc}") from None
    return _with_mock(_apply(spec, flags, ctx))


def _with_mock(spec: PhaseSpec) -> PhaseSpec:
    """A phase on the mock LLM talks to it through opencode's provider config: when the file
    gives none, the default one (its URL comes from `MOCK_LLM_URL`, set by the run)."""
    if spec.mock is None or spec.opencode_config is not None:
        return spec
    from mock import opencode_provider_config

    config = opencode_provider_config("{env:MOCK_LLM_URL}")
    return replace(spec, opencode_config=config, model=spec.model or config["model"])


def _apply(spec: PhaseSpec, flags: Overrides, ctx: Context) -> PhaseSpec:
    """`spec` with the flags that were given laid over it, each checked like its key."""
    changes: dict[str, Any] = {}
    if flags.model is not None:
        changes["model"] = _flag("--model", model, flags.model)
    if flags.agent is not None:
        changes["agent"] = _flag("--agent", text, flags.agent)
    if flags.thinking is not None:
        changes["thinking"] = _flag("--thinking", flag, flags.thinking)
    if flags.mock is not None:
        script = partial(mock_script, base=Path.cwd(), home=ctx.home)
        changes["mock"] = _flag("--mock", script, flags.mock)
    if flags.attach is not None:
        attach = _flag("--attach", loopback_url, flags.attach)
        changes["server"] = replace(spec.server, attach=attach)
    if flags.isolate is not None:
        isolate = _flag("--isolate", flag, flags.isolate)
        changes["server"] = replace(changes.get("server", spec.server), isolate=isolate)
    if flags.recycle_after is not None:
        after = _flag("--recycle-after", at_least(1), flags.recycle_after)
        changes["server"] = replace(changes.get("server", spec.server), recycle_after=after)
    if flags.recycle_rss_mib is not None:
        rss = _flag("--recycle-rss", amount, flags.recycle_rss_mib)
        changes["server"] = replace(changes.get("server", spec.server), recycle_rss_mib=rss)
    # Paths typed on the command line are relative to where the command runs.
    render = partial(output_path, base=Path.cwd(), home=ctx.home, name=spec.name, now=ctx.now)
    paths = {"transcript": flags.transcript, "result": flags.result}
    given: dict[str, Any] = {
        key: _flag(f"--{key}", render, raw) for key, raw in paths.items() if raw is not None
    }
    if flags.result is not None:
        every = partial(render, now=ANY_TIME)
        given["earlier"] = every_run(_flag("--result", every, flags.result))
    if given:
        changes["output"] = replace(spec.output, **given)
    return replace(spec, **changes)


def _flag(name: str, check: Callable[[Any], T], value: Any) -> T:
    try:
        return check(value)
    except Invalid as exc:
        raise PhaseFileError(str(exc.under(name))) from None


def _var_flag(item: Any) -> tuple[str, str]:
    if not isinstance(item, str) or "=" not in item:
        raise expected("K=V", item)
    key, _, value = item.partition("=")
    try:
        var_name(key)
    except Invalid as exc:
        raise Invalid(f"{exc.problem}, got {item!r}") from None
    return key, value


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping instead of keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[tuple[str, Any]] = set()
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node.value, str):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                problem = f"found duplicate key {key_node.value!r}"
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, source: str) -> Any:
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PhaseFileError(f"{source}: cannot read file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise PhaseFileError(f"{source}: cannot read file: not UTF-8 text") from exc
    try:
        data = yaml.load(content, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise PhaseFileError(f"{source}: {_yaml_problem(exc, content)}") from exc
    return _vars_as_written(data, content)


def _vars_as_written(data: Any, content: str) -> Any:
    """The numbers among `vars` as the file wrote them (`1.10` stays `1.10`, `0x1F` stays
    `0x1F`): a var stands for text in the prompt, and YAML's number is not that text."""
    variables = data.get("vars") if isinstance(data, dict) else None
    if not isinstance(variables, dict):
        return data
    written = _plain_scalars(yaml.compose(content, Loader=yaml.SafeLoader), "vars")
    for name, value in variables.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and name in written:
            variables[name] = written[name]
    return data


def _plain_scalars(document: yaml.Node | None, key: str) -> dict[str, str]:
    """The text of each unquoted scalar in the top-level mapping `key` of a composed document."""
    if not isinstance(document, yaml.MappingNode):
        return {}
    for key_node, value_node in document.value:
        if key_node.value == key and isinstance(value_node, yaml.MappingNode):
            return {
                k.value: v.value
                for k, v in value_node.value
                if isinstance(k, yaml.ScalarNode)
                and isinstance(v, yaml.ScalarNode)
                and v.style is None
            }
    return {}


def _yaml_problem(exc: yaml.YAMLError, content: str) -> str:
    """PyYAML's several-line report as one line: where, then what."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = content.count("\n", 0, exc.position) + 1
        char = exc.character
        shown = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        return f"line {line}: invalid YAML: unacceptable character {shown}: {exc.reason}"
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    detail = f"{problem} ({context})" if context else problem
    return f"{where}invalid YAML: {detail}"
