"""What the actors of a phase are given, derived from its `PhaseSpec`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from core.permissions import PermissionPolicy
from runner.phase import PhaseSpec

if TYPE_CHECKING:
    from core.termination import Policy
    from messages.records import PhaseStarted
    from messages.server import ServerReady

# The CLI loads this module before it starts opencode: what only the phase's actors need (the
# termination policy, the records, pykka and requests behind actors.termination) is imported
# where it is used, once opencode is booting.


def banner(
    spec: PhaseSpec,
    ready: ServerReady,
    session_id: str,
    permission_rules: tuple[dict[str, str], ...] = (),
) -> PhaseStarted:
    """The phase's banner (and the transcript header's source)."""
    from messages.records import PhaseStarted

    return PhaseStarted(
        phase=spec.name,
        label=spec.label,
        session_id=session_id,
        directory=str(spec.directory),
        agent=spec.agent,
        model=spec.model,
        server_version=ready.version,
        server_url=ready.url,
        server_origin=ready.origin,
        transcript_path=str(spec.output.transcript),
        permission_rules=permission_rules,
    )


def permission_policy(spec: PhaseSpec) -> PermissionPolicy:
    """The phase file's answers to permission requests."""
    permissions = spec.permissions
    return PermissionPolicy(
        default=permissions.default,
        allow=frozenset(permissions.allow),
        deny=frozenset(permissions.deny),
        feedback=permissions.feedback,
    )


def prompt_options(spec: PhaseSpec) -> Any:
    """What every prompt of the phase carries besides its text (`format`: `output_schema`)."""
    from actors.termination import PromptOptions

    schema = spec.output_schema
    output = None if schema is None else {"type": "json_schema", "schema": dict(schema)}
    return PromptOptions(model=spec.model, agent=spec.agent, variant=spec.variant, format=output)


def termination_policy(spec: PhaseSpec, session_id: str, now: float) -> Policy:
    """The phase's termination policy, its clock starting `now`."""
    from core.guards import GuardLimits
    from core.termination import Limits, Policy

    budgets = spec.budgets
    guards = GuardLimits(
        cost_usd=budgets.cost_usd,
        tokens=budgets.tokens,
        steps=budgets.steps,
        repeats=budgets.repeats,
        compactions=budgets.compactions,
    )
    limits = Limits(
        resumes=budgets.resumes,
        repairs=budgets.repairs,
        provider_retries=budgets.provider_retries,
        phase_timeout=spec.timeouts.phase,
        stall_timeout=spec.timeouts.stall,
        guards=guards,
        structured=spec.output_schema is not None,
    )
    return Policy(limits, prompt=spec.prompt, session_id=session_id, now=now)


def sibling(transcript: os.PathLike[str] | str, suffix: str) -> str:
    """A file beside the transcript: `runs/x.jsonl` -> `runs/x.server.log`."""
    path = str(transcript)
    return (path[: -len(".jsonl")] if path.endswith(".jsonl") else path) + suffix
