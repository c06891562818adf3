"""What the actors of a phase are given, derived from its `PhaseSpec`."""

from __future__ import annotations

from core.permissions import PermissionPolicy
from core.termination import Limits, Policy
from messages.records import PhaseStarted
from messages.server import ServerReady
from runner.phase import PhaseSpec

# The question tool blocks a session until answered, and plan mode switches need a person:
# a headless run denies them when the session is created.
DENY_BLOCKING_TOOLS = tuple(
    {"permission": name, "action": "deny", "pattern": "*"}
    for name in ("question", "plan_enter", "plan_exit")
)


def banner(spec: PhaseSpec, ready: ServerReady, session_id: str) -> PhaseStarted:
    """The phase's banner (and the transcript header's source)."""
    return PhaseStarted(
        phase=spec.name,
        label=spec.label,
        session_id=session_id,
        directory=str(spec.directory),
        agent=spec.agent,
        model=spec.model,
        server_version=ready.version,
        server_url=ready.url,
        transcript_path=str(spec.output.transcript),
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


def termination_policy(spec: PhaseSpec, session_id: str, now: float) -> Policy:
    """The phase's termination policy, its clock starting `now`."""
    limits = Limits(
        resumes=spec.budgets.resumes,
        repairs=spec.budgets.repairs,
        provider_retries=spec.budgets.provider_retries,
        phase_timeout=spec.timeouts.phase,
        stall_timeout=spec.timeouts.stall,
    )
    return Policy(limits, prompt=spec.prompt, session_id=session_id, now=now)
