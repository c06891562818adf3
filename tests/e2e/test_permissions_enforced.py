"""A phase's permissions are enforced by opencode itself, whatever opencode would allow.

Each case runs `python -m runner` twice, on a phase with no `opencode_config`: with `--attach`
to a server running opencode's own defaults (which allow bash, edit and webfetch unasked), and
to a server started with a configuration that allows everything (both warm: `tests.warm`).
Either way, what the policy rejects does not happen (no file, no request), what it allows does,
every ask is answered once and recorded, and the phase ends with its verdict. The first case
runs a third time on the server the runner starts itself for the phase (`mock:` embedded), as
a user runs it.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.opencode_versions import capabilities
from core.permissions import PermissionPolicy, restricts_subagents
from tests.helpers import PROJECT_ROOT, isolated_env, make_project

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

PERMISSIVE = {"permission": {"*": "allow"}}  # an attached server that would ask nothing


def bash(command: str) -> dict[str, Any]:
    return {"name": "bash", "arguments": {"command": command, "description": "run it"}}


def write(path: str, content: str = "written\n") -> dict[str, Any]:
    return {"name": "write", "arguments": {"filePath": path, "content": content}}


def read(path: str) -> dict[str, Any]:
    return {"name": "read", "arguments": {"filePath": path}}


def webfetch(url: str) -> dict[str, Any]:
    return {"name": "webfetch", "arguments": {"url": url, "format": "text"}}


def subagent(*calls: dict[str, Any]) -> dict[str, Any]:
    """A script whose agent hands `calls` (one a turn) to a `general` subagent."""
    task = {"description": "child work", "prompt": "SUBTASK: do it", "subagent_type": "general"}
    return {
        "turns": [{"tool_calls": [{"name": "task", "arguments": task}]}, {"text": "Parent done."}],
        "subagents": [
            {
                "match": "SUBTASK",
                "turns": [*({"tool_calls": [call]} for call in calls), {"text": "Child done."}],
            }
        ],
    }


def turns(*calls: dict[str, Any]) -> dict[str, Any]:
    """A script calling `calls`, one a turn, then ending its turn."""
    return {"turns": [*({"tool_calls": [call]} for call in calls), {"text": "All done."}]}


@dataclass
class Run:
    """One CLI run: exit code, result, transcript, the project it worked in."""

    code: int
    out: str
    result: dict[str, Any]
    transcript: list[dict[str, Any]]
    project: Path
    journal: Any = None  # the mock's requests, when the test owns the mock
    permissions: dict[str, Any] = field(default_factory=dict)

    def refused(self) -> bool:
        """True when this opencode cannot hold the policy's subagents, and the runner refused
        the phase as it must: exit 64, one reason, nothing run (1.15.13 and older)."""
        policy = PermissionPolicy(
            default=self.permissions.get("default", "reject"),
            allow=frozenset(self.permissions.get("allow", ())),
            deny=frozenset(self.permissions.get("deny", ())),
        )
        if capabilities(self.result["server_version"]).subagent_rules:
            return False
        if not restricts_subagents(policy):
            return False
        assert (self.code, self.result["exit_code"], self.result["session_id"]) == (64, 64, None)
        assert "does not hold a subagent to its session's rules" in self.result["reason"]
        assert sorted(path.name for path in self.project.iterdir()) == [".git", "README.md"]
        return True

    @property
    def line(self) -> int:
        """The server's protocol: 1 (opencode 1.x) or 2 (2.x)."""
        return int(self.result["server_capabilities"]["protocol"])

    def answers(self) -> list[dict[str, Any]]:
        return [line for line in self.transcript if line["type"] == "runner.permission_answered"]

    def tools(self) -> list[dict[str, Any]]:
        """The final state of every tool part of the session tree, in order."""
        parts: dict[str, dict[str, Any]] = {}
        for line in self.transcript:
            part = line.get("properties", {}).get("part", {})
            if line.get("type") == "message.part.updated" and part.get("type") == "tool":
                parts[part["id"]] = part
        return list(parts.values())


@pytest.fixture(params=["defaults", "permissive"])
def run_phase(request, tmp_path, warm_servers):
    """Factory: `run_phase(script, permissions)` runs the CLI in the fixture's mode: attached
    to a server on opencode's defaults or on a configuration that allows everything, or
    (`spawned`, for a test that asks for it with `indirect`) on the runner's own server."""
    mode = request.param

    def go(script: dict[str, Any], permissions: dict[str, Any] | None) -> Run:
        project = make_project(tmp_path / "work")
        phase: dict[str, Any] = {
            "name": "enforced",
            "prompt": "Do the task",
            "model": "test/mock-model",
            "directory": str(project),
            "timeouts": {"phase": "90s", "stall": "60s"},
        }
        if permissions is not None:
            phase["permissions"] = permissions
        env = {**os.environ, **isolated_env(tmp_path)}
        env.pop("OPENCODE_SERVER_PASSWORD", None)
        args: list[str] = []
        journal = None
        if mode == "spawned":  # the embedded mock: the runner starts opencode on its defaults
            (tmp_path / "script.json").write_text(json.dumps(script))
            phase["mock"] = str(tmp_path / "script.json")
        else:
            server = warm_servers.take(script, PERMISSIVE if mode == "permissive" else None)
            journal = server.mock.journal
            env["OPENCODE_SERVER_PASSWORD"] = server.password
            args = ["--attach", server.url]
        path = tmp_path / "phase.yaml"
        path.write_text(yaml.safe_dump(phase))
        proc = subprocess.run(
            [sys.executable, "-m", "runner", str(path), "--plain", *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=100,
            check=False,
        )
        (result_path,) = (tmp_path / "runs").glob("*.result.json")
        result = json.loads(result_path.read_text())
        with open(result["transcript"]) as handle:
            transcript = [json.loads(line) for line in handle]
        entries = journal.entries() if journal is not None else None
        out = proc.stdout + proc.stderr
        return Run(proc.returncode, out, result, transcript, project, entries, permissions or {})

    return go


def assert_done_with_answers(run: Run, rejected: list[str], allowed: tuple[str, ...] = ()):
    """Verdict done, each ask answered once, the rejected ones recorded in the result."""
    assert (run.code, run.result["verdict"]) == (0, "done"), run.out[-3000:]
    answers = run.answers()
    assert all(n == 1 for n in Counter(a["request_id"] for a in answers).values()), answers
    assert sorted(a["permission"] for a in answers if a["reply"] == "reject") == sorted(rejected)
    assert {a["permission"] for a in answers if a["reply"] == "once"} <= set(allowed)
    recorded = run.result["rejected_permissions"]
    assert sorted(r["permission"] for r in recorded) == sorted(rejected)
    assert run.transcript[0]["permission_rules"] == run.result["permission_rules"]
    assert run.result["permission_rules"][-3:] == [
        {"permission": name, "pattern": "*", "action": "deny"}
        for name in ("question", "plan_enter", "plan_exit")
    ]


@pytest.mark.parametrize("run_phase", ["defaults", "permissive", "spawned"], indirect=True)
def test_default_reject_stops_a_command(run_phase):
    run = run_phase(turns(bash("touch pwned")), None)
    assert not (run.project / "pwned").exists()
    assert_done_with_answers(run, rejected=["bash"])
    (tool,) = run.tools()
    assert tool["state"]["status"] == "error"
    assert "phase policy" in tool["state"]["error"]


def test_a_denied_command_is_rejected_when_the_default_allows(run_phase):
    run = run_phase(
        turns(write("allowed.txt"), bash("touch pwned")), {"default": "allow", "deny": ["bash"]}
    )
    if run.refused():  # it allows `task` on a server that cannot hold subagents to it
        return
    assert (run.project / "allowed.txt").read_text() == "written\n"
    assert not (run.project / "pwned").exists()
    assert_done_with_answers(run, rejected=["bash"])


def test_allowing_edit_allows_only_edits(run_phase):
    run = run_phase(turns(write("note.md"), bash("touch pwned")), {"allow": ["edit"]})
    assert (run.project / "note.md").read_text() == "written\n"
    assert not (run.project / "pwned").exists()
    assert_done_with_answers(run, rejected=["bash"], allowed=("edit",))


def test_a_subagent_is_held_to_the_policy(run_phase):
    script = subagent(bash("touch child-pwned"), write("child-note.md"))
    run = run_phase(script, {"allow": ["task", "edit"]})
    assert not (run.project / "child-pwned").exists()
    if run.refused():
        return
    assert (run.project / "child-note.md").read_text() == "written\n"  # what it allows works
    by_tool = {part["tool"]: part for part in run.tools()}
    if run.line == 2:  # 2.x offers the child its shell: the child asks, and the policy says no
        assert_done_with_answers(run, rejected=["bash"], allowed=("task", "edit"))
        assert by_tool["shell"]["state"]["status"] == "error"
        return
    assert_done_with_answers(run, rejected=[], allowed=("task", "edit"))
    # 1.x: the child session is not even offered the tool the policy rejects
    assert by_tool["invalid"]["state"]["input"]["tool"] == "bash"
    if run.journal is not None:
        child = [e for e in run.journal if e.kind == "turn" and e.branch == "SUBTASK"]
        offered = {tool["function"]["name"] for tool in child[0].body["tools"]}
        assert "bash" not in offered
        assert {"write", "edit"} <= offered


def test_a_subagent_cannot_start_when_the_policy_rejects_the_task_tool(run_phase):
    run = run_phase(subagent(bash("touch child-pwned")), {"allow": ["edit"]})
    assert not (run.project / "child-pwned").exists()
    assert_done_with_answers(run, rejected=["task"], allowed=("edit",))
    assert [part["tool"] for part in run.tools()] == ["subagent" if run.line == 2 else "task"]


class Recorder(http.server.BaseHTTPRequestHandler):
    """A loopback page that counts who fetched it."""

    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b"the fetched page"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def page():
    hits: list[str] = []
    handler = type("Handler", (Recorder,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/page", hits
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("allowed", [False, True])
def test_webfetch_requests_only_what_the_policy_allows(run_phase, page, allowed):
    url, hits = page
    run = run_phase(turns(webfetch(url)), {"allow": ["webfetch"]} if allowed else None)
    assert hits == (["/page"] if allowed else [])
    assert_done_with_answers(run, rejected=[] if allowed else ["webfetch"], allowed=("webfetch",))


@pytest.mark.parametrize("allowed", [False, True])
def test_files_outside_the_project_are_read_only_when_allowed(run_phase, tmp_path, allowed):
    outside = tmp_path / "outside" / "secret.txt"
    outside.parent.mkdir()
    outside.write_text("the outside secret\n")
    allow = ["read", "external_directory"] if allowed else ["read"]
    run = run_phase(turns(read(str(outside))), {"allow": allow})
    assert_done_with_answers(
        run,
        rejected=[] if allowed else ["external_directory"],
        allowed=("read", "external_directory"),
    )
    (tool,) = run.tools()
    if allowed:
        assert "the outside secret" in tool["state"]["output"]
    else:
        assert tool["state"]["status"] == "error"
        assert "the outside secret" not in json.dumps(run.transcript)
