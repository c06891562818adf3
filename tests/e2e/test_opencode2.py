"""The runner on opencode 2.x (`@opencode/cli` 2.1.2, installed into `.opencode2/` by `make
setup`), as a user runs it: `python -m runner PHASE.yaml` with `RUNNER_OPENCODE` naming the 2.x
binary, the phase's own server started from it, the embedded mock behind it. The same phases as
on 1.x, but for the tools' 2.x names and arguments (`shell`, `path`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import PROJECT_ROOT, isolated_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

OPENCODE2 = PROJECT_ROOT / ".opencode2" / "node_modules" / ".bin" / "opencode2"
NOTE = "---\ntitle: Hello\nauthor: two\n---\n\nHello!\n"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    result: dict
    transcript: list[dict]
    workspace: Path


def run(tmp_path: Path, script: dict, *args: str, **phase_keys) -> Run:
    """Run one phase on its own opencode 2.x server behind the embedded mock."""
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    (tmp_path / "script.json").write_text(json.dumps(script))
    phase = {
        "name": "two",
        "prompt": "Do the task.",
        "model": "test/mock-model",
        "mock": "script.json",
        "directory": "ws",
        "timeouts": {"phase": "1m", "stall": "30s"},
        **phase_keys,
    }
    (tmp_path / "phase.yaml").write_text(yaml.safe_dump(phase))
    env = {**os.environ, **isolated_env(tmp_path), "RUNNER_OPENCODE": str(OPENCODE2)}
    done = subprocess.run(
        [sys.executable, "-m", "runner", str(tmp_path / "phase.yaml"), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    results = sorted((tmp_path / "runs").glob("*.result.json"))
    result = json.loads(results[0].read_text()) if results else {}
    transcript = []
    if result.get("transcript"):
        with open(result["transcript"]) as handle:
            transcript = [json.loads(line) for line in handle]
    return Run(done.returncode, done.stdout, done.stderr, result, transcript, workspace)


def test_a_text_and_reasoning_phase_is_done_on_2_x_and_show_replays_it(tmp_path):
    script = {"turns": [{"reasoning": ["Let me ", "think."], "text": ["Hello ", "from two."]}]}
    done = run(tmp_path, script, "--plain", "--thinking")
    assert done.code == 0, (done.stdout, done.stderr)
    assert done.result["verdict"] == "done"
    assert done.result["server_version"] == "2.1.2"
    assert done.result["server_capabilities"]["protocol"] == 2
    assert done.transcript[0]["opencode_version"] == "2.1.2"
    lines = done.stdout.splitlines()
    assert "thinking: Let me think." in lines
    assert "Hello from two." in lines
    assert any(line.startswith("── step done: stop · 2,000 in") for line in lines), lines
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "show",
            done.result["transcript"],
            "--plain",
            "--thinking",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.stdout.splitlines() == lines


def test_json_output_on_2_x_has_the_run_format_lines(tmp_path):
    done = run(tmp_path, {"turns": [{"text": ["Hi ", "there."]}]}, "--json")
    assert done.code == 0, done.stderr
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["type"] for o in objects] == ["step_start", "text", "step_finish", "runner.result"]
    assert objects[1]["part"]["text"] == "Hi there."


def test_allowed_tools_run_and_a_command_outside_the_policy_is_rejected_on_2_x(tmp_path):
    write = {"path": "notes/hello.md", "content": NOTE}
    shell = {"command": "echo hi > x.txt"}
    script = {
        "turns": [
            {"text": "Writing.", "tool_calls": [{"name": "write", "arguments": write}]},
            {"tool_calls": [{"name": "read", "arguments": {"path": "notes/hello.md"}}]},
            {"tool_calls": [{"name": "shell", "arguments": shell}]},
            {"text": "Done."},
        ]
    }
    permissions = {"default": "reject", "allow": ["edit", "read"]}
    done = run(
        tmp_path, script, "--plain", permissions=permissions, done={"artifacts": ["notes/*"]}
    )
    assert done.code == 0, (done.stdout, done.stderr)
    assert (done.workspace / "notes" / "hello.md").read_text() == NOTE
    assert not (done.workspace / "x.txt").exists()  # asked, and rejected by the policy
    (rejected,) = done.result["rejected_permissions"]
    assert rejected["permission"] == "bash"  # 2.x's `shell`, by its 1.x name
    lines = done.stdout.splitlines()
    assert "✓ read notes/hello.md → 6 lines" in lines or any("✓ read" in x for x in lines), lines
    rules = done.result["permission_rules"]
    assert {"permission": "*", "pattern": "*", "action": "ask"} in rules


def test_a_denied_tool_is_not_run_on_2_x_even_when_everything_else_is_allowed(tmp_path):
    """The trap of 2.x: the 1.x `permission` key is dropped silently, leaving allow-all. Rules
    sent as 2.x `permissions` hold: the denied `shell` never runs."""
    shell = {"command": "echo hi > x.txt"}
    script = {"turns": [{"tool_calls": [{"name": "shell", "arguments": shell}]}, {"text": "Ok."}]}
    permissions = {"default": "allow", "deny": ["bash"]}
    done = run(tmp_path, script, "--plain", permissions=permissions)
    assert done.code == 0, (done.stdout, done.stderr)
    assert not (done.workspace / "x.txt").exists()
    assert {"permission": "bash", "pattern": "*", "action": "deny"} in done.result[
        "permission_rules"
    ]


def test_output_schema_is_refused_on_2_x_with_one_line(tmp_path):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    done = run(tmp_path, {"turns": [{"text": "42"}]}, "--plain", output_schema=schema)
    assert done.code == 64, (done.stdout, done.stderr)
    assert done.result["verdict"] == "failed"
    assert "has no structured output" in done.result["reason"]


def test_a_subagent_is_held_to_the_policy_on_2_x(tmp_path):
    """Measured on 2.1.2: a child session asks what its parent's rules ask (the runner answers
    it by the policy), so a subagent's denied command does not run either."""
    shell = {"command": "echo hi > x.txt"}
    child = {"agent": "general", "description": "child work", "prompt": "SUBTASK: do it"}
    script = {
        "turns": [{"tool_calls": [{"name": "subagent", "arguments": child}]}, {"text": "Done."}],
        "subagents": [
            {
                "match": "SUBTASK",
                "turns": [{"tool_calls": [{"name": "shell", "arguments": shell}]}, {"text": "Ok."}],
            }
        ],
    }
    permissions = {"default": "allow", "deny": ["bash"]}
    done = run(tmp_path, script, "--plain", permissions=permissions)
    assert done.code == 0, (done.stdout, done.stderr)
    assert not (done.workspace / "x.txt").exists()
    assert "  ↳ subagent started: child work" in done.stdout.splitlines()
    (rejected,) = done.result["rejected_permissions"]
    assert rejected["permission"] == "bash"
    assert rejected["session_id"] != done.result["session_id"]  # the child's own ask
