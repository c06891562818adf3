"""`python -m runner` as a subprocess: the real opencode server, the mock LLM, every outcome.

Each test writes a phase file whose `opencode_config` points opencode at the in-process mock
through `{env:MOCK_LLM_URL}`, runs the CLI, and checks the exit code, the result JSON (which
must match the exit code) and the transcript (complete and parseable).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from mock import MockLLM
from tests.helpers import PROJECT_ROOT, isolated_env, make_project

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PROVIDER = {
    "model": "test/mock-model",
    "small_model": "test/mock-model",
    "provider": {
        "test": {
            "npm": "@ai-sdk/openai-compatible",
            "name": "Mock",
            "options": {"baseURL": "{env:MOCK_LLM_URL}", "apiKey": "sk-test"},
            "models": {
                "mock-model": {"name": "Mock", "limit": {"context": 100000, "output": 4096}}
            },
        }
    },
}
NOTE = "---\ntitle: Note\nauthor: mock\n---\n\nHello.\n"


def write_note(content=NOTE, path="notes/note.md"):
    return {"name": "write", "arguments": {"filePath": path, "content": content}}


class Run:
    """One CLI run: the process, its output, its files."""

    def __init__(self, proc, stdout, stderr, phase_dir, mock):
        self.code = proc.returncode
        self.stdout = stdout
        self.stderr = stderr
        self.mock = mock
        runs = phase_dir / "runs"
        results = sorted(runs.glob("*.result.json")) if runs.exists() else []
        self.results = [json.loads(path.read_text()) for path in results]
        self.result = self.results[0] if self.results else None
        logs = sorted(runs.glob("*.debug.log")) if runs.exists() else []
        self.debug_log = "".join(path.read_text() for path in logs)
        self.transcript = []
        if self.result is not None:
            with open(self.result["transcript"]) as handle:
                self.transcript = [json.loads(line) for line in handle]

    def records(self, kind):
        return [line for line in self.transcript if line.get("type") == f"runner.{kind}"]


@pytest.fixture
def cli(tmp_path, warm_servers):
    """Factory: `cli(script, phase_overrides, args, during=callable, warm=False)` runs the runner.

    The phase's server is the runner's own, started from the phase's `opencode_config`; with
    `warm=True` (a test about a phase, not about its server's life) the runner attaches to a
    warm server started with that configuration instead (`tests.warm`)."""
    env = {**os.environ, **isolated_env(tmp_path)}
    env.pop("OPENCODE_SERVER_PASSWORD", None)

    def write_phase(name="p", yaml_text="", **overrides):
        project = make_project(tmp_path / f"work-{name}")
        phase = {
            "name": name,
            "prompt": "Write notes/note.md with front matter (title, author).",
            "model": "test/mock-model",
            "directory": str(project),
            "opencode_config": PROVIDER,
            "permissions": {"allow": ["edit", "read"]},  # what the scripts' agents do
            "timeouts": {"phase": "2m", "stall": "1m"},
        }
        phase.update(overrides)
        if phase["opencode_config"] is None:  # the server attached to has its own
            del phase["opencode_config"]
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(phase) + yaml_text)  # `yaml_text`: keys as a user types them
        return path

    def run(script, *, args=(), during=None, phases=None, warm=False, **overrides):
        if warm:
            config = overrides.pop("opencode_config", PROVIDER)
            server = warm_servers.take(script, None if config == PROVIDER else config)
            phase = write_phase(**overrides, opencode_config=None, server={"attach": server.url})
            extra = {"OPENCODE_SERVER_PASSWORD": server.password}
            return _run(server.mock, [phase], args, during, extra)
        with MockLLM(script) as mock:
            paths = phases or [write_phase(**overrides)]
            return _run(mock, paths, args, during, {"MOCK_LLM_URL": mock.url})

    def _run(mock, paths, args, during, extra):
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", *map(str, paths), "--plain", *args],
            cwd=PROJECT_ROOT,
            env={**env, **extra},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            if during is not None:
                during(proc, mock)
            stdout, stderr = proc.communicate(timeout=150)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        return Run(proc, stdout, stderr, tmp_path, mock)

    run.write_phase = write_phase
    return run


def assert_consistent(run, verdict, code):
    """Exit code, result JSON and transcript agree."""
    assert run.code == code, (run.stdout[-3000:], run.stderr[-3000:])
    assert run.result["verdict"] == verdict, run.result["reason"]
    assert run.result["exit_code"] == code
    assert run.transcript[0]["type"] == "runner.header"
    (final,) = run.records("verdict_reached")
    assert (final["verdict"], final["exit_code"]) == (verdict, code)
    assert run.transcript[-1]["type"] == "runner.verdict_reached"


def opencode_children(pid):
    """Pids of `opencode serve` processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"serve" in cmdline:
            found.append(int(entry.name))
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_happy_path_is_done(cli):
    script = {"turns": [{"tool_calls": [write_note()]}, {"text": "Wrote it."}]}
    run = cli(script, done={"artifacts": ["notes/note.md"]})
    assert_consistent(run, "done", 0)
    assert [a["kind"] for a in run.result["attempts"]] == ["initial"]
    assert "Wrote it." in run.stdout
    assert "verdict: done" in run.stdout
    assert "abort sweep skipped" in run.debug_log  # its one session ended idle


def test_vars_reach_the_model_as_the_yaml_text_wrote_them(cli):
    run = cli(
        {"turns": [{"text": "Noted."}]},
        prompt="Release ${VERSION}, hex ${HEX}, flag ${FLAG}.",
        yaml_text="vars: {VERSION: 1.10, HEX: 0x1F, FLAG: yes}\n",
        warm=True,
    )
    assert_consistent(run, "done", 0)
    sent = json.dumps(run.mock.journal.turns()[0].body["messages"])
    assert "Release 1.10, hex 0x1F, flag true." in sent


def test_turn_cut_mid_way_then_resume_writes_the_artifact(cli):
    bash = {"name": "bash", "arguments": {"command": "echo x", "description": "x"}}
    script = {
        "turns": [{"tool_calls": [bash]}, {"tool_calls": [write_note()]}, {"text": "Now done."}]
    }
    config = {**PROVIDER, "permission": {"bash": "ask"}}
    run = cli(
        script,
        opencode_config=config,
        permissions={"allow": ["edit"], "feedback": None},
        done={"artifacts": ["notes/note.md"]},
        warm=True,
    )
    assert_consistent(run, "done", 0)
    # 1.x ends the turn at a rejection without feedback; 2.x takes it as the user declining the
    # call and aborts the turn (`error: aborted`)
    cut = "error" if run.result["server_capabilities"]["protocol"] == 2 else "tool-calls"
    assert [(a["kind"], a["finish"]) for a in run.result["attempts"]] == [
        ("initial", cut),
        ("resume", "stop"),
    ]
    (rejected,) = run.result["rejected_permissions"]
    assert rejected["permission"] == "bash"
    resume_request = run.mock.journal.turns()[1].body["messages"]
    assert f"finish reason '{cut}'" in json.dumps(resume_request)


def test_artifact_never_written_is_incomplete_after_the_repair_budget(cli):
    run = cli(
        {"turns": [{"text": "I did it, trust me."}]},
        budgets={"repairs": 2, "resumes": 0},
        done={"artifacts": ["notes/note.md"]},
        warm=True,
    )
    assert_consistent(run, "incomplete", 2)
    assert [a["kind"] for a in run.result["attempts"]] == ["initial", "repair", "repair"]
    assert "done checks still failing after 2 repair(s)" in run.result["reason"]
    assert len(run.records("attempt_started")) == 3
    repair_request = json.dumps(run.mock.journal.turns()[1].body["messages"])
    assert "notes/note.md" in repair_request  # the repair prompt names what is missing


def test_invalid_front_matter_is_repaired(cli):
    bad = "---\ntitle: Note\n---\n\nNo author.\n"
    script = {
        "turns": [
            {"tool_calls": [write_note(bad)]},
            {"text": "Done."},
            {"tool_calls": [write_note()]},
            {"text": "Fixed."},
        ]
    }
    run = cli(
        script,
        done={
            "artifacts": ["notes/note.md"],
            "frontmatter": {"files": ["notes/*.md"], "required": ["title", "author"]},
        },
        warm=True,
    )
    assert_consistent(run, "done", 0)
    assert [a["kind"] for a in run.result["attempts"]] == ["initial", "repair"]
    repair = run.records("attempt_started")[1]
    assert "missing required keys: author" in repair["prompt"]


def test_429_twice_then_ok_shows_the_retries(cli):
    faults = [{"attempt": [1, 2], "kind": "429", "retry_after": 1}]
    run = cli({"turns": [{"text": "Recovered.", "faults": faults}]}, warm=True)
    assert_consistent(run, "done", 0)
    assert run.result["attempts"][0]["retries"] == 2
    assert run.result["totals"]["retries"] == 2
    assert run.stdout.count("retrying in") == 2


def test_persistent_500_is_failed_with_the_provider_message(cli):
    faults = [{"attempt": "all", "kind": "500", "retry_after": 0.2, "message": "upstream on fire"}]
    run = cli({"turns": [{"text": "never", "faults": faults}]})
    assert_consistent(run, "failed", 1)
    assert "upstream on fire" in run.result["reason"]
    assert "abort sweep done" in run.debug_log  # a phase that did not end done: sweep first


def test_a_response_cut_mid_stream_is_retried_and_the_turn_ends_whole(cli):
    words = ["alpha ", "beta ", "gamma ", "delta."]
    run = cli({"turns": [{"text": words, "faults": [{"kind": "cut", "after_chunks": 2}]}]})
    assert_consistent(run, "done", 0)
    lines = run.stdout.splitlines()
    assert "alpha beta gamma delta." in lines, run.stdout  # the retried answer, whole
    assert [a["retries"] for a in run.result["attempts"]] == [1]
    assert not [line for line in lines if "unknown event" in line], run.stdout


@pytest.mark.serial  # the 3 s stall must fall inside a started turn: a loaded opencode starts late
def test_stall_is_stalled_and_the_session_aborted(cli):
    run = cli(
        {"turns": [{"text": "never", "faults": [{"attempt": 1, "kind": "stall"}]}]},
        timeouts={"stall": "3s", "phase": "2m"},
        warm=True,
    )
    assert_consistent(run, "stalled", 2)
    assert run.result["reason"] == "no progress for 3s"
    errors = [e for e in run.transcript if e.get("type") == "session.error"]
    assert errors[0]["properties"]["error"]["name"] == "MessageAbortedError"


@pytest.mark.serial  # the timeout must fall inside a started turn: a loaded opencode starts late
def test_phase_timeout_is_timed_out_and_the_session_aborted(cli):
    drip = {"text": [f"tick {i} " for i in range(100)], "delay": 0.2}  # 20 s of streaming
    run = cli({"turns": [drip]}, timeouts={"phase": "5s", "stall": "1m"}, warm=True)
    assert_consistent(run, "timed_out", 2)
    assert run.result["reason"] == "phase timeout of 5s reached"
    errors = [e for e in run.transcript if e.get("type") == "session.error"]
    assert errors[0]["properties"]["error"]["name"] == "MessageAbortedError"


def test_server_killed_mid_phase_fails_fast_with_its_log(cli):
    timing = {}

    def kill_server(proc, mock):
        mock.journal.wait_for(1, timeout=60)
        (server,) = opencode_children(proc.pid)
        os.kill(server, signal.SIGKILL)
        timing["killed"] = time.monotonic()
        proc.wait(timeout=30)
        timing["exited"] = time.monotonic()

    drip = {"text": [f"tick {i} " for i in range(200)], "delay": 0.1}
    run = cli({"turns": [drip]}, during=kill_server)
    assert_consistent(run, "failed", 1)
    assert "opencode server died (signal SIGKILL)" in run.result["reason"]
    assert "last server log lines:" in run.stdout
    assert run.result["server_log_tail"]
    assert timing["exited"] - timing["killed"] < 10  # the figure itself goes in the notes


def test_sigint_mid_phase_is_interrupted_with_files_and_no_orphan(cli):
    seen = {}

    def interrupt(proc, mock):
        mock.journal.wait_for(1, timeout=60)
        (server,) = opencode_children(proc.pid)
        seen["server"] = server
        os.kill(proc.pid, signal.SIGINT)

    drip = {"text": [f"tick {i} " for i in range(200)], "delay": 0.1}
    run = cli({"turns": [drip]}, during=interrupt)
    assert_consistent(run, "interrupted", 130)
    assert run.result["reason"] == "interrupted by SIGINT"
    assert not alive(seen["server"])


def test_sigterm_mid_phase_exits_143(cli):
    def terminate(proc, mock):
        mock.journal.wait_for(1, timeout=60)
        os.kill(proc.pid, signal.SIGTERM)

    drip = {"text": [f"tick {i} " for i in range(200)], "delay": 0.1}
    run = cli({"turns": [drip]}, during=terminate)
    assert_consistent(run, "interrupted", 143)


def test_three_phases_in_parallel_share_one_server(cli):
    script = {"turns": [{"text": "Parallel hello."}]}
    phases = [cli.write_phase(name=f"par{i}") for i in range(3)]
    servers = {}

    def count_servers(proc, mock):
        mock.journal.wait_for(1, timeout=60)
        servers["pids"] = opencode_children(proc.pid)

    run = cli(script, phases=phases, args=("--parallel", "3"), during=count_servers)
    assert run.code == 0, run.stdout[-3000:]
    assert sorted(r["verdict"] for r in run.results) == ["done"] * 3
    assert len({r["server_url"] for r in run.results}) == 1
    assert len(servers["pids"]) == 1
    assert len({r["session_id"] for r in run.results}) == 3
    # The batch ends with its summary and batch-{time}.json beside the first phase's result.
    written = run.stdout.splitlines()[-1].removeprefix("batch: ")
    assert Path(written).parent == Path(run.results[0]["result"]).parent
    batch = json.loads(Path(written).read_text())
    assert batch["exit_code"] == 0
    assert sorted(row["phase"] for row in batch["phases"]) == ["par0", "par1", "par2"]


def test_a_server_is_recycled_after_the_phases_it_may_serve_and_none_is_left(cli):
    script = {"turns": [{"text": "Recycled hello."}]}
    phases = [cli.write_phase(name=f"rec{i}", server={"recycle_after": 2}) for i in range(5)]
    run = cli(script, phases=phases, args=("--parallel", "2"))
    assert run.code == 0, run.stdout[-3000:]
    assert sorted(r["verdict"] for r in run.results) == ["done"] * 5
    by_server = Counter((r["server_url"], r["server_pid"]) for r in run.results)
    assert sorted(by_server.values()) == [1, 2, 2]  # 2 phases a server, the last one alone
    assert [pid for _url, pid in by_server if alive(pid)] == []  # each stopped


def test_commands_the_agent_detached_do_not_outlive_the_run(cli):
    token = str(40000 + os.getpid() % 20000)
    detach = {"command": f"nohup sleep {token} >/dev/null 2>&1 &", "description": "detach"}
    script = {"turns": [{"tool_calls": [{"name": "bash", "arguments": detach}]}, {"text": "ok"}]}
    run = cli(script, permissions={"default": "allow"})
    assert_consistent(run, "done", 0)
    tool = [
        e
        for e in run.transcript
        if e.get("type") == "message.part.updated"
        and e["properties"]["part"].get("tool") in ("bash", "shell")  # 1.x, 2.x
    ]
    assert tool[-1]["properties"]["part"]["state"]["status"] == "completed"
    assert sleepers(token) == []


def sleepers(token):
    """Live `sleep <token>` processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", token.encode()] and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def test_a_runner_killed_outright_takes_its_server_with_it(cli):
    seen = {}

    def kill_runner(proc, mock):
        mock.journal.wait_for(1, timeout=60)
        (server,) = opencode_children(proc.pid)
        seen["server"] = server
        os.kill(proc.pid, signal.SIGKILL)  # no cleanup possible: the kernel must do it
        proc.wait(timeout=10)
        seen["gone"] = wait_gone(server, timeout=10)
        if not seen["gone"]:
            os.kill(server, signal.SIGKILL)  # do not leak it, whatever the verdict

    drip = {"text": [f"tick {i} " for i in range(200)], "delay": 0.1}
    run = cli({"turns": [drip]}, during=kill_runner)
    assert run.code == -signal.SIGKILL
    assert seen["gone"], f"opencode {seen['server']} outlived its runner"


def wait_gone(pid, timeout):
    """True once `pid` has exited (pidfd: no polling of /proc)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready) or not alive(pid)
    finally:
        os.close(fd)


def test_sighup_mid_phase_is_129_with_files_and_nothing_left(cli):
    token = str(20000 + os.getpid() % 20000)
    detach = {"command": f"nohup sleep {token} >/dev/null 2>&1 &", "description": "detach"}
    drip = {"text": [f"tick {i} " for i in range(200)], "delay": 0.1}
    script = {"turns": [{"tool_calls": [{"name": "bash", "arguments": detach}]}, drip]}
    seen = {}

    def hang_up(proc, mock):
        mock.journal.wait_for(2, timeout=60)  # the detached sleep runs; the agent streams
        (server,) = opencode_children(proc.pid)
        seen["server"] = server
        seen["sleepers"] = sleepers(token)
        os.kill(proc.pid, signal.SIGHUP)

    run = cli(script, during=hang_up, permissions={"default": "allow"})
    assert_consistent(run, "interrupted", 129)
    assert run.result["reason"] == "interrupted by SIGHUP"
    assert seen["sleepers"], "the agent's detached command never ran"
    assert not alive(seen["server"])
    assert sleepers(token) == []


@pytest.mark.serial  # a bound in seconds
def test_ctrl_c_during_a_long_provider_retry_exits_130_within_two_seconds(cli):
    faults = [{"attempt": 1, "kind": "429", "retry_after": 30}]
    timing = {}

    def interrupt(proc, mock):
        mock.journal.wait_for(1, timeout=60)  # the 429 is out: opencode waits 30 s to retry
        timing["signalled"] = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
        timing["exited"] = time.monotonic()

    run = cli({"turns": [{"text": "too late", "faults": faults}]}, during=interrupt)
    assert_consistent(run, "interrupted", 130)
    assert timing["exited"] - timing["signalled"] < 2.0
    assert len(run.mock.journal.turns()) == 1  # the retry never happened
