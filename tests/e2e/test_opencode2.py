"""The runner on opencode 2.x (`@opencode/cli` 2.1.2, installed into `.opencode2/` by `make
setup`), as a user runs it: `python -m runner PHASE.yaml` with `RUNNER_OPENCODE` naming the 2.x
binary, the phase's own server started from it, the embedded mock behind it. The same phases as
on 1.x, but for the tools' 2.x names and arguments (`shell`, `path`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from actors import ServerSpec
from messages import ServerFailed, ServerReady
from mock import FaultProxy, MockLLM, opencode_provider_config
from tests.e2e.test_cli import opencode_children
from tests.e2e.test_cli_commands import runner
from tests.helpers import (
    PROJECT_ROOT,
    Inbox,
    isolated_env,
    make_project,
    runner_cli,
    start_server,
)

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


def run(
    tmp_path: Path,
    script: dict | None,
    *args: str,
    during: Callable[[subprocess.Popen], None] | None = None,
    environ: dict[str, str] | None = None,
    **phase_keys: Any,
) -> Run:
    """Run one phase on its own opencode 2.x server behind the embedded mock (`script`), or
    as `phase_keys` say (`server: {attach: URL}`, with `script` None); `during(proc)` acts
    on the running CLI."""
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    phase = {
        "name": "two",
        "prompt": "Do the task.",
        "model": "test/mock-model",
        "directory": "ws",
        "timeouts": {"phase": "1m", "stall": "30s"},
        **phase_keys,
    }
    if script is not None:
        (tmp_path / "script.json").write_text(json.dumps(script))
        phase["mock"] = "script.json"
    (tmp_path / "phase.yaml").write_text(yaml.safe_dump(phase))
    env = {**os.environ, **isolated_env(tmp_path), "RUNNER_OPENCODE": str(OPENCODE2)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", str(tmp_path / "phase.yaml"), *args],
        cwd=PROJECT_ROOT,
        env={**env, **(environ or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        if during is not None:
            during(proc)
        stdout, stderr = proc.communicate(timeout=200)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
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
    data = Path(isolated_env(tmp_path)["XDG_DATA_HOME"]) / "opencode"
    assert (data / "opencode-2.db").exists()  # its own: 1.x's opencode.db is never opened
    assert not (data / "opencode.db").exists()
    lines = done.stdout.splitlines()
    assert "thinking: Let me think." in lines
    assert "Hello from two." in lines
    assert any(line.startswith("── step done: stop · 2,000 in") for line in lines), lines
    shown = runner("show", done.result["transcript"], "--plain", "--thinking")
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


SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}, "why": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def answer(value: dict) -> dict:
    """A turn ending with its result as a JSON block, as the runner asks of a 2.x model."""
    return {"text": ["The result:\n```json\n", json.dumps(value), "\n```"]}


def test_a_structured_result_on_2_x_is_checked_and_lands_in_the_result(tmp_path):
    """2.x has no structured output: the runner asks for a JSON block and reads it back."""
    done = run(
        tmp_path,
        {"turns": [answer({"answer": 42, "why": "it is"})]},
        "--json",
        output_schema=SCHEMA,
    )
    assert done.code == 0, (done.stdout, done.stderr)
    assert done.result["structured"] == {"answer": 42, "why": "it is"}
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert out[-2] == {"type": "runner.structured", "structured": {"answer": 42, "why": "it is"}}
    assert out[-1]["type"] == "runner.result"


def test_a_structured_result_that_does_not_fit_is_repaired_on_2_x(tmp_path):
    turns = [answer({"answer": "forty-two"}), answer({"answer": 42})]
    done = run(tmp_path, {"turns": turns}, "--plain", output_schema=SCHEMA)
    assert done.code == 0, (done.stdout, done.stderr)
    assert [a["kind"] for a in done.result["attempts"]] == ["initial", "repair"]
    assert done.result["structured"] == {"answer": 42}
    prompts = [r["prompt"] for r in done.transcript if r["type"] == "runner.attempt_started"]
    assert "does not fit the schema at answer" in prompts[1], prompts


def test_no_structured_result_on_2_x_is_incomplete_within_the_repairs(tmp_path):
    script = {"turns": [{"text": "I would rather not say."}]}
    done = run(tmp_path, script, "--plain", output_schema=SCHEMA, budgets={"repairs": 1})
    assert (done.code, done.result["verdict"]) == (2, "incomplete"), (done.stdout, done.stderr)
    assert done.result["structured"] is None


def test_a_phase_without_a_schema_keeps_no_structured_result_on_2_x(tmp_path):
    done = run(tmp_path, {"turns": [answer({"answer": 1})]}, "--json")
    assert done.code == 0, done.stderr
    assert done.result["structured"] is None
    assert "runner.structured" not in done.stdout


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


def test_a_provider_429_twice_is_retried_and_counted_on_2_x(tmp_path):
    faults = [{"attempt": [1, 2], "kind": "429", "retry_after": 1}]
    done = run(tmp_path, {"turns": [{"text": "Recovered.", "faults": faults}]}, "--plain")
    assert done.code == 0, (done.stdout, done.stderr)
    assert done.result["attempts"][0]["retries"] == 2
    assert done.stdout.count("retrying in") == 2
    assert "Recovered." in done.stdout.splitlines()


def test_a_persistent_500_ends_within_the_runners_retry_budget_on_2_x(tmp_path):
    """2.x alone retries a persistent 500 for about 86 s; the phase's budget ends it first."""
    faults = [{"attempt": "all", "kind": "500", "retry_after": 0.2, "message": "upstream on fire"}]
    script = {"turns": [{"text": "never", "faults": faults}]}
    done = run(tmp_path, script, "--plain", budgets={"provider_retries": 1})
    assert (done.code, done.result["verdict"]) == (1, "failed"), (done.stdout, done.stderr)
    assert done.result["reason"] == "provider retried 2 times (budget 1): upstream on fire"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_signal_mid_turn_on_2_x_interrupts_with_the_files_written(tmp_path, sig, code):
    def interrupt(proc: subprocess.Popen) -> None:
        if once(streaming_in(tmp_path), proc):
            os.kill(proc.pid, sig)

    drip = {"text": [f"tick {i} " for i in range(200)], "delay": 0.1}
    done = run(tmp_path, {"turns": [drip]}, "--plain", during=interrupt)
    assert (done.code, done.result["verdict"]) == (code, "interrupted"), (done.stdout, done.stderr)
    assert done.result["reason"] == f"interrupted by {sig.name}"
    assert done.transcript[-1]["type"] == "runner.verdict_reached"


@dataclass
class Stage:
    mock: MockLLM
    ready: ServerReady
    proxy: FaultProxy


@pytest.fixture
def stage2(tmp_path):
    """Factory: an opencode 2.x server behind a mock serving `script`, a fault proxy before it."""
    stops: list[Callable[[], Any]] = []

    def start(script: dict) -> Stage:
        mock = MockLLM(script).start()
        stops.append(mock.stop)
        root = tmp_path / "server"
        spec = ServerSpec(
            directory=str(make_project(root)),
            log_path=str(root / "server.log"),
            binary=str(OPENCODE2),
            env=isolated_env(root),
            config_content=json.dumps(opencode_provider_config(mock.url)),
        )
        inbox = Inbox()
        server = start_server(spec, inbox)
        stops.append(lambda: server.stop(timeout=10))
        ready = inbox.expect((ServerReady, ServerFailed), timeout=60)
        assert isinstance(ready, ServerReady), ready
        proxy = FaultProxy(ready.url).start()
        stops.append(proxy.stop)
        return Stage(mock, ready, proxy)

    yield start
    for stop in reversed(stops):
        stop()


def test_a_stream_cut_every_five_events_on_2_x_shows_each_part_once_and_resyncs(tmp_path, stage2):
    turns = []
    for turn in range(3):
        words = [f"t{turn}w{i:02d} " for i in range(30)]
        step: dict[str, Any] = {"text": words, "delay": 0.2}
        if turn < 2:
            step["tool_calls"] = [{"name": "read", "arguments": {"path": "README.md"}}]
        turns.append(step)
    setup = stage2({"turns": turns})
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "README.md").write_text("# A project\n")
    setup.proxy.cut_every(5)
    secret = {"OPENCODE_SERVER_PASSWORD": setup.ready.password or ""}
    timeouts = {"phase": "3m", "stall": "1m", "outage": "30s"}
    done = run(
        tmp_path,
        None,
        "--plain",
        environ=secret,
        server={"attach": setup.proxy.url},
        permissions={"allow": ["read"]},
        timeouts=timeouts,
    )
    assert (done.code, done.result["verdict"]) == (0, "done"), (done.stdout, done.stderr)
    assert done.result["reconnects"] >= 10, done.result["reconnects"]
    said = [word for line in done.stdout.splitlines() for word in line.split()]
    words = [f"t{turn}w{i:02d}" for turn in range(3) for i in range(30)]
    assert {w: said.count(w) for w in words} == dict.fromkeys(words, 1)
    assert sum(line.startswith("✓ read") for line in done.stdout.splitlines()) == 2
    shown = runner("show", done.result["transcript"], "--plain")
    assert shown.stdout.splitlines() == done.stdout.splitlines()


def test_the_question_tool_is_not_offered_on_2_x_so_nothing_waits_for_an_answer(tmp_path):
    option = {"label": "Yes", "description": "go"}
    question = {"questions": [{"question": "Proceed?", "header": "C", "options": [option]}]}
    script = {
        "turns": [{"tool_calls": [{"name": "question", "arguments": question}]}, {"text": "Ok."}]
    }
    done = run(tmp_path, script, "--plain", permissions={"default": "allow"})
    assert done.code == 0, (done.stdout, done.stderr)
    rules = done.result["permission_rules"]
    assert {"permission": "question", "pattern": "*", "action": "deny"} in rules
    (failed,) = [line for line in done.stdout.splitlines() if line.startswith("✗ question")]
    assert "No tool named" in failed, failed  # 2.x took the denied tool out of the model's list


def test_two_phases_in_parallel_share_one_2_x_server_and_keep_their_own_events(tmp_path):
    """2.x sends every location's events on one stream: each phase keeps its own session's."""
    script = {"turns": [{"text": ["Hello ", "from ", "both."], "delay": 0.05}]}
    (tmp_path / "script.json").write_text(json.dumps(script))
    paths = []
    for name in ("left", "right"):
        (tmp_path / name).mkdir()
        phase = {
            "name": name,
            "prompt": "Say hello.",
            "model": "test/mock-model",
            "mock": "script.json",
            "directory": name,
            "timeouts": {"phase": "1m", "stall": "30s"},
        }
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(phase))
        paths.append(str(tmp_path / f"{name}.yaml"))
    env = {**os.environ, **isolated_env(tmp_path), "RUNNER_OPENCODE": str(OPENCODE2)}
    done = runner_cli(*paths, "--parallel", "2", "--plain", env=env, timeout=100)
    assert done.returncode == 0, (done.stdout, done.stderr)
    results = [json.loads(p.read_text()) for p in sorted((tmp_path / "runs").glob("*.result.json"))]
    assert sorted(r["verdict"] for r in results) == ["done", "done"]
    assert results[0]["session_id"] != results[1]["session_id"]
    for result in results:
        with open(result["transcript"]) as handle:
            events = [line for line in map(json.loads, handle) if "properties" in line]
        sessions = {e["properties"].get("sessionID") for e in events} - {None}
        assert sessions == {result["session_id"]}  # its own session's events only
        finals = [
            e["properties"]["part"]["text"]
            for e in events
            if e["type"] == "message.part.updated"
            and e["properties"]["part"].get("time", {}).get("end")
        ]
        assert finals == ["Hello from both."]


def streaming_in(tmp_path: Path) -> Callable[[], bool]:
    """True once the phase's transcript holds its first deltas (the turn streams)."""

    def streaming() -> bool:
        runs = tmp_path / "runs"
        found = list(runs.glob("*.jsonl")) if runs.exists() else []
        return bool(found) and "tick 2" in found[0].read_text()

    return streaming


def once(streaming: Callable[[], bool], proc: subprocess.Popen) -> bool:
    """Wait (bounded) until the turn streams; False if the run ended first."""
    deadline = time.monotonic() + 60
    while not streaming() and proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.05)
    return proc.poll() is None


def test_a_2_x_server_killed_mid_phase_fails_it_fast_with_the_reason(tmp_path):
    seen: dict[str, Any] = {}

    def kill_server(proc: subprocess.Popen) -> None:
        if once(streaming_in(tmp_path), proc):
            (server,) = opencode_children(proc.pid)
            os.kill(server, signal.SIGKILL)
            seen["killed"] = time.monotonic()
            proc.wait(timeout=30)
            seen["exited"] = time.monotonic()

    drip = {"text": [f"tick {i} " for i in range(200)], "delay": 0.1}
    done = run(tmp_path, {"turns": [drip]}, "--plain", during=kill_server)
    assert (done.code, done.result["verdict"]) == (1, "failed"), (done.stdout, done.stderr)
    assert "opencode server died (signal SIGKILL)" in done.result["reason"]
    assert seen["exited"] - seen["killed"] < 10
