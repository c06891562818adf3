"""The validated phase file as frozen data: what `runner.phase.load_phase` returns."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from core.permissions import default_feedback

DEFAULT_TRANSCRIPT = "runs/{name}-{time}.jsonl"
DEFAULT_RESULT = "runs/{name}-{time}.result.json"
TIME_FORMAT = "%Y%m%d-%H%M%S"


def _no_vars() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Permissions:
    """How permission requests are answered: `default`, the exceptions, and the message sent."""

    default: str = "reject"
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    feedback: str | None = default_feedback()


@dataclass(frozen=True, slots=True, kw_only=True)
class FrontMatterCheck:
    """Files (globs, relative to the phase's directory) whose front matter holds `required`."""

    globs: tuple[str, ...]
    required: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DoneChecks:
    """What must hold for the phase to count as done, beyond a clean finish."""

    artifacts: tuple[str, ...] = ()
    frontmatter: tuple[FrontMatterCheck, ...] = ()
    command: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Budgets:
    """How many follow-up prompts and provider retries one phase may spend; what it may spend
    over its whole session tree (None: unlimited); how many repeats make a loop."""

    resumes: int = 3
    repairs: int = 2
    provider_retries: int = 8
    cost_usd: float | None = None
    tokens: int | None = None
    steps: int | None = None
    repeats: int = 5
    compactions: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Time limits, in seconds."""

    phase: float = 3600.0
    stall: float = 600.0
    start: float = 30.0
    outage: float = 60.0
    silent: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerOptions:
    """Which opencode server to use: a running one (`attach`) or a binary to start."""

    attach: str | None = None
    opencode: str | None = None
    isolate: bool = False  # a fresh data folder for the run's server, removed afterwards
    # A started server takes no new phase once it served this many, or holds this much memory
    # (`runner.servers.pool`); None: never for that reason.
    recycle_after: int | None = 100
    recycle_rss_mib: float | None = 768
    spare: int = 1  # a recycled server's successor is started ahead of need (0: when needed)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputOptions:
    """Where this run's transcript and result go (placeholders already rendered, absolute)."""

    transcript: Path
    result: Path
    earlier: str = ""  # a glob of every run's result (`{time}` as `*`): what `--skip-done` reads


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseSpec:
    """One validated phase file, with every default filled in and every path absolute."""

    source: str
    name: str
    label: str
    prompt: str
    prompt_file: Path | None = None
    vars: Mapping[str, str] = field(default_factory=_no_vars)
    secrets: tuple[str, ...] = ()  # environment variables whose values every output masks
    agent: str | None = None
    model: str | None = None
    variant: str | None = None
    directory: Path
    thinking: bool = False
    permissions: Permissions = field(default_factory=Permissions)
    done: DoneChecks = field(default_factory=DoneChecks)
    budgets: Budgets = field(default_factory=Budgets)
    timeouts: Timeouts = field(default_factory=Timeouts)
    server: ServerOptions = field(default_factory=ServerOptions)
    opencode_config: Mapping[str, Any] | None = None
    output_schema: Mapping[str, Any] | None = None  # the structured result's JSON Schema
    mock: Path | None = None  # the mock LLM script the run serves the phase from (runner._mock)
    output: OutputOptions

    @property
    def model_ref(self) -> tuple[str, str] | None:
        """`model` split into opencode's `(providerID, modelID)`, or None for its default."""
        if self.model is None:
            return None
        provider, _, model = self.model.partition("/")
        return provider, model

    @property
    def config_content(self) -> str | None:
        """`opencode_config` as the JSON text for `OPENCODE_CONFIG_CONTENT`, or None."""
        if self.opencode_config is None:
            return None
        return json.dumps(self.opencode_config)
