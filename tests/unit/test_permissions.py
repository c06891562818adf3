"""The permission policy table."""

from __future__ import annotations

import fnmatch

import pytest

from core.permissions import (
    BLOCKING_RULES,
    DEFAULT_FEEDBACK,
    PermissionPolicy,
    Rule,
    agent_rules,
    decide,
    describe,
    known_permissions,
    restricts_subagents,
    session_rules,
)

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


# -- the rules a session is created with ---------------------------------------------------------

BUILD = (  # opencode 1.18.33's default agent, as `GET /agent` lists it
    Rule("*", "*", "allow"),
    Rule("doom_loop", "*", "ask"),
    Rule("external_directory", "*", "ask"),
    Rule("external_directory", "/tmp/opencode/*", "allow"),
    Rule("question", "*", "deny"),
    Rule("read", "*", "allow"),
    Rule("read", "*.env", "ask"),
    Rule("question", "*", "allow"),
)


def effective(rules, permission, pattern="x"):
    """opencode's answer: the last rule matching the permission and the pattern (ask if none)."""
    for rule in reversed(rules):
        if fnmatch.fnmatchcase(permission, rule.permission) and fnmatch.fnmatchcase(
            pattern, rule.pattern
        ):
            return rule.action
    return "ask"


def inherited(rules):
    """What a subagent's child session keeps of its parent's rules (measured on 1.14-1.18)."""
    return [r for r in rules if r.permission == "external_directory" or r.action == "deny"]


@pytest.mark.parametrize(
    ("policy", "permission", "pattern", "parent", "child"),
    [
        # default reject: whatever is not allowed asks at the top and is denied below it
        (PermissionPolicy(), "bash", "x", "ask", "deny"),
        (PermissionPolicy(), "webfetch", "x", "ask", "deny"),
        (PermissionPolicy(), "some_mcp_tool", "x", "ask", None),  # unknown: asked at the top
        (PermissionPolicy(), "external_directory", "/tmp/opencode/a", "ask", "ask"),
        # allowed: the agent's own answer comes back (allowed, or asked where it asks)
        (PermissionPolicy(allow=frozenset({"read"})), "read", "a.py", "allow", None),
        (PermissionPolicy(allow=frozenset({"read"})), "read", "a.env", "ask", None),
        (PermissionPolicy(allow=frozenset({"bash"})), "bash", "x", "allow", None),
        (PermissionPolicy(allow=frozenset({"read"})), "bash", "x", "ask", "deny"),
        # default allow: only what is denied changes
        (PermissionPolicy(default="allow"), "bash", "x", "allow", None),
        (PermissionPolicy(default="allow", deny=frozenset({"bash"})), "bash", "x", "ask", "deny"),
        (PermissionPolicy(default="allow", deny=frozenset({"bash"})), "edit", "x", "allow", None),
        # deny beats allow
        (
            PermissionPolicy(allow=frozenset({"bash"}), deny=frozenset({"bash"})),
            "bash",
            "x",
            "ask",
            "deny",
        ),
        # the tools that need a person are denied whatever the policy says
        (PermissionPolicy(default="allow"), "question", "x", "deny", "deny"),
        (PermissionPolicy(allow=frozenset({"question"})), "question", "x", "deny", "deny"),
    ],
)
def test_session_rules_hold_the_session_and_its_subagents_to_the_policy(
    policy, permission, pattern, parent, child
):
    rules = session_rules(
        policy, known=known_permissions(["bash", "read"], BUILD), agent_rules=BUILD
    )
    # opencode evaluates the agent's rules, then the session's
    assert effective((*BUILD, *rules), permission, pattern) == parent
    # a child's own agent rules are opencode's, plus what it inherits; None: the agent decides
    child_rules = inherited(rules)
    assert effective(child_rules, permission, pattern) == (child or "ask")
    if child is None:
        assert not [r for r in child_rules if fnmatch.fnmatchcase(permission, r.permission)]


def test_every_known_permission_but_the_allowed_one_is_asked_and_the_answer_rejects_it():
    policy = PermissionPolicy(allow=frozenset({"edit"}))
    rules = session_rules(policy, known=known_permissions(), agent_rules=BUILD)
    for name in known_permissions() - {"edit"}:
        assert effective((*BUILD, *rules), name) == "ask", name
        assert decide(policy, {"permission": name}).reply == "reject"
    assert effective((*BUILD, *rules), "edit") == "allow"


def test_without_the_agents_rules_an_allowed_permission_is_asked_and_allowed():
    policy = PermissionPolicy(allow=frozenset({"read"}))
    rules = session_rules(policy)
    assert effective(rules, "read") == "ask"
    assert decide(policy, {"permission": "read"}).reply == "once"


def test_the_agents_rules_for_an_allowed_permission_are_given_once_each_in_order():
    rules = session_rules(PermissionPolicy(allow=frozenset({"read"})), known=(), agent_rules=BUILD)
    read = [r for r in rules if r.permission == "read"]
    assert read == [Rule("read", "*", "allow"), Rule("read", "*.env", "ask")]
    assert rules[0] == Rule("*", "*", "ask")
    assert rules[-3:] == BLOCKING_RULES


def test_a_user_configured_deny_of_an_allowed_permission_stays_denied():
    agent = (*BUILD, Rule("bash", "rm *", "deny"))
    rules = session_rules(PermissionPolicy(allow=frozenset({"bash"})), agent_rules=agent)
    assert effective((*agent, *rules), "bash", "rm -rf /") == "deny"
    assert effective((*agent, *rules), "bash", "ls") == "allow"


def test_known_permissions_map_tools_to_the_permission_they_ask_for():
    names = known_permissions(
        ["invalid", "write", "apply_patch", "read_mcp_resource", "github_create_issue"],
        [Rule("repo_clone", "*", "deny"), Rule("mcp_*", "*", "ask")],
    )
    assert {"edit", "read", "github_create_issue", "repo_clone"} <= names
    assert not {"invalid", "write", "apply_patch", "mcp_*", "*"} & names


def test_agent_rules_pick_the_named_agent_else_the_first_primary_one():
    agents = [
        {"name": "general", "mode": "subagent", "permission": [BUILD[1].as_dict()]},
        {"name": "hidden", "mode": "primary", "hidden": True, "permission": []},
        {"name": "build", "mode": "primary", "permission": [BUILD[0].as_dict()]},
        {"name": "plan", "mode": "primary", "permission": [BUILD[2].as_dict()]},
    ]
    assert agent_rules(agents, "plan") == (BUILD[2],)
    assert agent_rules(agents, None) == (BUILD[0],)
    assert agent_rules(agents, "missing") == (BUILD[0],)
    assert agent_rules([], None) == ()


def test_rules_round_trip_through_opencodes_shape():
    rule = Rule("bash", "git *", "deny")
    assert rule.as_dict() == {"permission": "bash", "pattern": "git *", "action": "deny"}
    assert Rule.from_dict(rule.as_dict()) == rule


@pytest.mark.parametrize(
    ("policy", "restricts"),
    [
        (PermissionPolicy(), False),  # task rejected: no subagent to hold
        (PermissionPolicy(allow=frozenset({"task"})), True),
        (PermissionPolicy(default="allow"), False),  # nothing restricted
        (PermissionPolicy(default="allow", deny=frozenset({"bash"})), True),
        (PermissionPolicy(default="allow", deny=frozenset({"task"})), False),
        (PermissionPolicy(default="allow", deny=frozenset({"question"})), False),
    ],
)
def test_a_policy_restricts_subagents_when_it_lets_them_start_and_limits_anything(
    policy, restricts
):
    assert restricts_subagents(policy) is restricts
