"""The phase's permission policy: the rules a session is created with, and the answer each
`permission.asked` gets (pure).

Theory of operation. opencode decides every permission itself, from its rules: the agent's
(opencode's defaults merged with the user's configuration) followed by the session's, the last
matching rule winning (`allow`, `deny` or `ask`). Only an `ask` reaches the runner, so a policy
that only answered asks would never see what opencode allows by default. The runner therefore
creates every session with rules (`session_rules`) that make opencode ask, or deny, whatever
the policy does not allow, and answers the asks (`decide`).

- `default: reject`: a catch-all `* ask` first, so a permission nobody named still asks. Each
  permission the policy allows then gets the agent's own rules for it back (opencode answers it
  as it would have: allowed, asked, or denied by the user's configuration; the runner never
  loosens what opencode would deny).
- Every known permission the policy does not allow gets `deny` then `ask`. The session itself
  asks (the last match), so the runner answers with the phase's feedback and records it. A
  subagent's child session inherits only its parent's `deny` rules (and those for
  `external_directory`), measured on 1.14.48-1.18.33, so the `deny` holds it to the policy:
  opencode does not even offer it the tool. Known permissions are opencode's own names, those
  in the agents' rules and the server's tools (MCP tools included) at the session's creation.
- `question`, `plan_enter` and `plan_exit` are denied last: they need a person.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Reply = Literal["once", "reject"]


def default_feedback(default: str = "reject") -> str:
    """The message sent with a rejection when the phase file sets no `permissions.feedback`."""
    rule = "permissions.default: reject" if default == "reject" else "permissions.deny"
    return (
        f"Rejected by the runner's phase policy ({rule}). Do not retry this; continue without it."
    )


DEFAULT_FEEDBACK = default_feedback("reject")


@dataclass(frozen=True, slots=True, kw_only=True)
class PermissionPolicy:
    """`default` answers every permission not named in `allow` or `deny`."""

    default: Literal["reject", "allow"] = "reject"
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    feedback: str | None = DEFAULT_FEEDBACK


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The reply to send, with the message the agent sees (None: reject silently)."""

    reply: Reply
    message: str | None


def allows(policy: PermissionPolicy, name: str) -> bool:
    """True when the policy allows the permission: `deny` beats `allow`, both beat `default`."""
    if name in policy.deny:
        return False
    if name in policy.allow:
        return True
    return policy.default == "allow"


def decide(policy: PermissionPolicy, request: dict[str, Any]) -> Decision:
    """Answer one request by the policy."""
    if allows(policy, str(request.get("permission", ""))):
        return Decision(reply="once", message=None)
    return Decision(reply="reject", message=policy.feedback)


Action = Literal["allow", "deny", "ask"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One opencode permission rule: `action` for `permission` on targets matching `pattern`."""

    permission: str
    pattern: str
    action: Action

    def as_dict(self) -> dict[str, str]:
        """The rule as opencode 1.x takes and returns it."""
        return {"permission": self.permission, "pattern": self.pattern, "action": self.action}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """A rule as opencode 1.x sends it."""
        return cls(str(data["permission"]), str(data["pattern"]), data["action"])


# A person must answer these, so a headless run denies them (last, over any other rule).
BLOCKING = ("question", "plan_enter", "plan_exit")
BLOCKING_RULES = tuple(Rule(name, "*", "deny") for name in BLOCKING)

# The permissions opencode 1.x asks for by name, besides each tool's own (its id): the server's
# tool list and its agents' rules add what a version or a user's configuration brings.
OPENCODE_PERMISSIONS = (
    "bash",
    "codesearch",
    "doom_loop",
    "edit",
    "external_directory",
    "glob",
    "grep",
    "list",
    "lsp",
    "read",
    "skill",
    "task",
    "todoread",
    "todowrite",
    "webfetch",
    "websearch",
)
# Tools whose calls opencode asks for under another permission's name.
_TOOL_PERMISSION = {
    "write": "edit",
    "apply_patch": "edit",
    "multiedit": "edit",
    "patch": "edit",
    "list_mcp_resources": "read",
    "list_mcp_resource_templates": "read",
    "read_mcp_resource": "read",
}
_NOT_A_PERMISSION = frozenset({"invalid", "*"})


def known_permissions(
    tool_ids: Iterable[str] = (), agent_rules: Iterable[Rule] = ()
) -> frozenset[str]:
    """Every permission name the server may ask for: opencode's own, its tools' (MCP and
    plugin tools included) and those its agents' rules name (wildcards left out)."""
    names = set(OPENCODE_PERMISSIONS)
    names.update(_TOOL_PERMISSION.get(tool, tool) for tool in tool_ids)
    names.update(rule.permission for rule in agent_rules if not _WILD.search(rule.permission))
    return frozenset(names - _NOT_A_PERMISSION)


def session_rules(
    policy: PermissionPolicy,
    *,
    known: Iterable[str] = OPENCODE_PERMISSIONS,
    agent_rules: Sequence[Rule] = (),
) -> tuple[Rule, ...]:
    """The rules a session is created with, so that opencode asks or denies whatever `policy`
    does not allow, in the session and in its subagents' sessions (the module docstring).

    `agent_rules` are the rules of the agent the session runs (opencode's defaults merged with
    the user's configuration): each permission the policy allows gets them back after the
    catch-all `ask`. Without them an allowed permission is asked, and allowed by `decide`."""
    rules: list[Rule] = []
    strict = policy.default == "reject"
    if strict:
        rules.append(Rule("*", "*", "ask"))
    for name in sorted(set(known) | policy.deny | policy.allow):
        if name not in BLOCKING and not allows(policy, name):
            rules += (Rule(name, "*", "deny"), Rule(name, "*", "ask"))
    if strict:
        for name in sorted(policy.allow - policy.deny - set(BLOCKING)):
            for rule in agent_rules:
                own = Rule(name, rule.pattern, rule.action)
                if _matches(name, rule.permission) and rules[-1] != own:
                    rules.append(own)
    return (*rules, *BLOCKING_RULES)


def agent_rules(agents: Iterable[Mapping[str, Any]], name: str | None) -> tuple[Rule, ...]:
    """The rules of agent `name` in opencode's `GET /agent` list, else of its default agent
    (listed first among those a session can run: not a subagent, not hidden)."""
    listed = [agent for agent in agents if isinstance(agent, Mapping)]
    chosen = next((agent for agent in listed if agent.get("name") == name), None)
    if chosen is None:
        primary = (a for a in listed if a.get("mode") != "subagent" and not a.get("hidden"))
        chosen = next(primary, None)
    rules = (chosen or {}).get("permission") or ()
    return tuple(Rule.from_dict(rule) for rule in rules if isinstance(rule, Mapping))


def restricts_subagents(policy: PermissionPolicy) -> bool:
    """True when the policy lets the agent start subagents (`task`) and restricts anything a
    subagent could do: only a server whose child sessions hold their rules can enforce it."""
    restricted = policy.default == "reject" or bool(policy.deny - set(BLOCKING))
    return restricted and allows(policy, "task")


_WILD = re.compile(r"[*?]")


def _matches(name: str, pattern: str) -> bool:
    """opencode's wildcard match of a permission name: `*` any run, `?` one character."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, name, re.DOTALL) is not None


def describe(request: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The permission name and its patterns, for warnings and records."""
    patterns = request.get("patterns") or ()
    return str(request.get("permission", "?")), tuple(str(p) for p in patterns)
