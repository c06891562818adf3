"""The permission policy table."""

from __future__ import annotations

import pytest

from core.permissions import DEFAULT_FEEDBACK, PermissionPolicy, decide, describe

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("policy", "permission", "reply", "message"),
    [
        (PermissionPolicy(), "bash", "reject", DEFAULT_FEEDBACK),
        (PermissionPolicy(feedback=None), "bash", "reject", None),
        (PermissionPolicy(allow=frozenset({"bash"})), "bash", "once", None),
        (PermissionPolicy(allow=frozenset({"bash"})), "edit", "reject", DEFAULT_FEEDBACK),
        (PermissionPolicy(default="allow"), "edit", "once", None),
        (
            PermissionPolicy(default="allow", deny=frozenset({"edit"})),
            "edit",
            "reject",
            DEFAULT_FEEDBACK,
        ),
        (
            PermissionPolicy(allow=frozenset({"edit"}), deny=frozenset({"edit"})),
            "edit",
            "reject",
            DEFAULT_FEEDBACK,
        ),
    ],
)
def test_decide(policy, permission, reply, message):
    decision = decide(policy, {"id": "per_1", "permission": permission, "patterns": ["*"]})
    assert (decision.reply, decision.message) == (reply, message)


def test_describe_names_permission_and_patterns():
    assert describe({"permission": "bash", "patterns": ["echo hi"]}) == ("bash", ("echo hi",))
    assert describe({}) == ("?", ())


def test_opencode_doom_loop_request_is_answered_by_the_policy_like_any_other():
    request = {"permission": "doom_loop", "patterns": ["read"]}
    assert decide(PermissionPolicy(), request).reply == "reject"
    assert decide(PermissionPolicy(allow=frozenset({"doom_loop"})), request).reply == "once"
    assert describe(request) == ("doom_loop", ("read",))
