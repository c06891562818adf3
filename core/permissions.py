"""The phase's permission policy: which answer a `permission.asked` gets (pure)."""

from __future__ import annotations

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


def decide(policy: PermissionPolicy, request: dict[str, Any]) -> Decision:
    """Answer one request: `deny` beats `allow`, and both beat `default`."""
    name = str(request.get("permission", ""))
    if name in policy.deny:
        allowed = False
    elif name in policy.allow:
        allowed = True
    else:
        allowed = policy.default == "allow"
    if allowed:
        return Decision(reply="once", message=None)
    return Decision(reply="reject", message=policy.feedback)


def describe(request: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The permission name and its patterns, for warnings and records."""
    patterns = request.get("patterns") or ()
    return str(request.get("permission", "?")), tuple(str(p) for p in patterns)
