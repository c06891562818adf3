"""A phase's session, created on the server with rules that enforce its permission policy.

opencode answers most permissions itself (see `core.permissions`), so the policy holds only if
the session carries rules that make opencode ask or deny what the policy does not allow. The
rules are computed from what the server says it has (its tools, its agents' rules), sent with
the session, and read back: a server that did not keep them cannot enforce the policy, and the
phase is refused before any prompt is sent.
"""

from __future__ import annotations

from typing import Any

from actors.opencode_client import OpencodeClient
from core.errors import PermissionsNotEnforcedError, RunnerError
from core.opencode_versions import Capabilities
from core.permissions import (
    PermissionPolicy,
    Rule,
    agent_rules,
    known_permissions,
    restricts_subagents,
    session_rules,
)
from runner._logs import logger


def enforced_rules(
    client: OpencodeClient, policy: PermissionPolicy, agent: str | None
) -> tuple[Rule, ...]:
    """The session rules for `policy` on this server (its tools and the agent's own rules)."""
    tools: list[str] = []
    agents: list[dict[str, Any]] = []
    try:
        tools = client.tool_ids()
        agents = client.agents()
    except RunnerError as exc:  # an older server: opencode's own names, allowed ones asked
        logger.debug("permission rules without the server's tools or agents: {}", exc)
    own = agent_rules(agents, agent)
    return session_rules(policy, known=known_permissions(tools, own), agent_rules=own)


def create_session(
    client: OpencodeClient,
    *,
    title: str,
    agent: str | None,
    model: str | None,
    policy: PermissionPolicy,
    capabilities: Capabilities,
) -> tuple[str, tuple[Rule, ...]]:
    """Create the session with the enforcing rules; its id and the rules the server kept.

    Raises `PermissionsNotEnforcedError`, before creating it when the server's subagents would
    escape the policy, and after when the session came back without the rules."""
    if not capabilities.subagent_rules and restricts_subagents(policy):
        raise PermissionsNotEnforcedError(
            f"opencode {capabilities.version} does not hold a subagent to its session's rules "
            "(1.17.0 and later do), and this phase allows `task` while restricting other "
            "permissions: deny `task` or use a newer opencode; the phase was not started"
        )
    rules = enforced_rules(client, policy, agent)
    info = client.create_session(
        title=title, agent=agent, model=model, permission=[rule.as_dict() for rule in rules]
    )
    session_id = str(info["id"])
    kept = info.get("permission")
    try:
        held = tuple(Rule.from_dict(rule) for rule in kept or ())
    except (KeyError, TypeError):
        held = ()
    if held != rules:
        raise PermissionsNotEnforcedError(
            f"opencode did not keep the permission rules of session {session_id} (it holds "
            f"{len(held)} of {len(rules)}): the phase's permissions cannot be enforced on this "
            "server, so the phase was not started"
        )
    return session_id, rules
