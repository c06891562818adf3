"""`python -m runner --attach` with the fault proxy between the runner and a real opencode: a
stream that keeps flapping, a refusal window, a permanent refusal; and a secret streamed across
deltas. Each test takes a warm opencode (behind the mock, `tests.warm`) and starts the proxy; the
runner attaches to the proxy with the server's password, exactly as a user attaches to a server
of their own. The outage budget is set short (`timeouts.outage`) where a test needs a fault to
outlast it, so that the test takes seconds, not minutes."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from actors import OpencodeClient
from core.opencode_versions import capabilities
from core.protocol import wire_for
from messages import ServerReady
from mock import FaultProxy, MockLLM
from tests.e2e.test_cli import Run, assert_consistent
from tests.e2e.test_cli_commands import runner
from tests.helpers import PROJECT_ROOT, make_project

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

RUN_JSON_PARTS = ("step-start", "text", "tool", "step-finish")
READ = {"name": "read", "arguments": {"filePath": "README.md"}}


@dataclass
class Stage:
    """The mock, the opencode server and the proxy one test runs against."""

    mock: MockLLM
    ready: ServerReady
    proxy: FaultProxy
    project: Path

    def snapshot(self, session_id: str) -> list[dict]:
        client = OpencodeClient(
            self.ready.url,
            password=self.ready.password,
            directory=str(self.project),
            wire=wire_for(capabilities(self.ready.version)),  # the line of the server
        )
        return client.messages(session_id)


@pytest.fixture
def stage(tmp_path, warm_servers):
    """Factory: `stage(script)`: a warm opencode behind the mock serving `script`, a project of
    the test's own and a fault proxy in front of the server; teardown stops the proxy."""
    stops = []

    def start(script) -> Stage:
        warm = warm_servers.take(script)
        project = make_project(tmp_path / "work")
        proxy = FaultProxy(warm.url).start()
        stops.append(proxy.stop)
        return Stage(mock=warm.mock, ready=warm.ready, proxy=proxy, project=project)

    yield start
    for stop in reversed(stops):
        stop()


@pytest.fixture
def attach(tmp_path):
    """Factory: `attach(stage, url=..., args=..., during=..., **phase_keys)` runs the CLI."""

    def run(stage: Stage, *, url=None, args=(), during=None, environ=None, **phase_keys) -> Run:
        phase = {
            "name": "attached",
            "prompt": "Do the task.",
            "model": "test/mock-model",
            "directory": str(stage.project),
            "server": {"attach": url or stage.proxy.url},
            "timeouts": {"phase": "3m", "stall": "1m"},
            **phase_keys,
        }
        path = tmp_path / "attached.yaml"
        path.write_text(yaml.safe_dump(phase))
        env = {**os.environ, **(environ or {}), "OPENCODE_SERVER_PASSWORD": stage.ready.password}
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", str(path), *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            if during is not None:
                during(stage)
            stdout, stderr = proc.communicate(timeout=200)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        return Run(proc, stdout, stderr, tmp_path, stage.mock)

    return run


def assert_every_part_once(run: Run, stage: Stage) -> None:
    """`--json` printed every assistant part of the final snapshot exactly once."""
    snapshot = stage.snapshot(run.result["session_id"])
    expected = [
        part["id"]
        for message in snapshot
        if message["info"]["role"] == "assistant"
        for part in message["parts"]
        if part["type"] in RUN_JSON_PARTS
    ]
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    emitted = [line["part"]["id"] for line in lines if "part" in line]
    assert Counter(emitted) == Counter(expected)
    assert len(expected) > 0


def test_a_stream_cut_every_five_events_for_twice_the_outage_budget_ends_done(stage, attach):
    deltas = [f"d{i:03d} " for i in range(250)]
    setup = stage({"turns": [{"tool_calls": [READ]}, {"text": deltas, "delay": 0.1}]})
    setup.proxy.cut_every(5)
    timeouts = {"phase": "3m", "stall": "1m", "outage": "10s"}
    run = attach(setup, args=("--json",), permissions={"allow": ["read"]}, timeouts=timeouts)
    assert_consistent(run, "done", 0)
    assert_every_part_once(run, setup)
    texts = [
        json.loads(line)["part"]["text"]
        for line in run.stdout.splitlines()
        if json.loads(line)["type"] == "text"
    ]
    assert texts == ["".join(deltas)]
    assert run.result["duration"] >= 20  # the stream flapped for twice the outage budget
    assert run.result["reconnects"] >= 40  # past the old budget of 30 failed attempts
    assert run.result["reconnects"] == len(run.records("stream_connected")) - 1
    assert len(run.records("resynced")) >= run.result["reconnects"]


def test_a_refusal_window_half_the_outage_budget_mid_phase_ends_done(stage, attach):
    deltas = [f"r{i:03d} " for i in range(60)]
    setup = stage({"turns": [{"text": deltas, "delay": 0.2}]})

    def refuse(stage):
        stage.mock.journal.wait_for(1, timeout=60)
        stage.proxy.wait_for_events(5, timeout=30)
        stage.proxy.refuse_for(5)
        stage.proxy.drop_streams()
        stage.proxy.wait_for_refusals(2, timeout=30)

    timeouts = {"phase": "3m", "stall": "1m", "outage": "10s"}
    run = attach(setup, args=("--json",), during=refuse, timeouts=timeouts)
    assert_consistent(run, "done", 0)
    assert_every_part_once(run, setup)
    reasons = [record["reason"] for record in run.records("stream_dropped")]
    assert any("cannot connect" in reason for reason in reasons), reasons
    assert run.result["reconnects"] >= 1
    assert setup.proxy.connections_refused >= 2


def test_a_permanent_refusal_fails_within_the_outage_budget_after_a_final_resync(stage, attach):
    deltas = [f"p{i:03d} " for i in range(300)]
    setup = stage({"turns": [{"text": deltas, "delay": 0.2}]})

    def refuse(stage):
        stage.mock.journal.wait_for(1, timeout=60)
        stage.proxy.wait_for_events(5, timeout=30)
        stage.proxy.refuse_streams_for(3600)
        stage.proxy.drop_streams()

    run = attach(setup, during=refuse, timeouts={"phase": "3m", "stall": "1m", "outage": "4s"})
    assert_consistent(run, "failed", 1)
    assert run.result["reason"].startswith("event stream lost"), run.result["reason"]
    types = [line["type"] for line in run.transcript]
    final = [r for r in run.records("resynced") if r["reason"] == "final"]
    assert len(final) == 1
    assert final[0]["error"] is None  # plain requests still reach the server
    assert types.index("runner.resynced", types.index("runner.stream_failed")) < len(types) - 1
    dropped = run.records("stream_dropped")[0]["time"]
    verdict = run.records("verdict_reached")[0]["time"]
    assert 4 <= verdict - dropped < 4 + 20  # the outage budget, not the phase timeout (3m)


def test_a_secret_streamed_across_three_deltas_is_nowhere(stage, attach, tmp_path):
    setup = stage({"turns": [{"text": "placeholder"}]})
    secret = setup.ready.password
    echo = {"command": "echo $OPENCODE_SERVER_PASSWORD", "description": "leak"}
    setup.mock.rescript(
        {
            "turns": [
                {
                    "text": ["The key is ", secret[:7], secret[7:19], secret[19:], ", done."],
                    "tool_calls": [{"name": "bash", "arguments": echo}],
                },
                {"text": "Finished."},
            ]
        }
    )
    run = attach(setup, url=setup.ready.url, args=("--plain",), permissions={"default": "allow"})
    assert_consistent(run, "done", 0)
    assert "The key is [redacted], done." in run.stdout
    everything = [run.stdout, run.stderr, *(p.read_text() for p in (tmp_path / "runs").iterdir())]
    assert not any(secret in text for text in everything)
    deltas = [
        line["properties"]["delta"]
        for line in run.transcript
        if line.get("type") == "message.part.delta"
    ]
    assert "".join(deltas).startswith("The key is [redacted], done.")


def test_the_basic_credential_and_the_environments_secrets_are_masked_everywhere(
    stage, attach, tmp_path
):
    setup = stage({"turns": [{"text": "placeholder"}]})
    credential = base64.b64encode(f"opencode:{setup.ready.password}".encode()).decode()
    api_key, dsn = "sk-test-4242424242424242", "postgres://u:hunter22@db/x"
    environ = {"MY_API_KEY": api_key, "DATABASE_URL": dsn, "SHORT_TOKEN": "abc"}
    echo = {"command": "echo $MY_API_KEY $DATABASE_URL", "description": "leak"}
    setup.mock.rescript(
        {
            "turns": [
                {
                    "text": [
                        "auth ",
                        credential[:9],
                        credential[9:],
                        " key ",
                        api_key[:5],
                        api_key[5:],
                    ],
                    "tool_calls": [{"name": "bash", "arguments": echo}],
                },
                {"text": f"Finished with {dsn} and abc."},
            ]
        }
    )
    run = attach(
        setup,
        url=setup.ready.url,
        args=("--plain",),
        environ=environ,
        permissions={"default": "allow"},
        secrets=["DATABASE_URL"],  # named by the phase: its name says nothing
    )
    assert_consistent(run, "done", 0)
    assert "auth [redacted] key [redacted]" in run.stdout
    assert "Finished with [redacted] and abc." in run.stdout  # too short to mask: abc stays
    everything = [run.stdout, run.stderr, *(p.read_text() for p in (tmp_path / "runs").iterdir())]
    for secret in (credential, api_key, dsn):
        assert not any(secret in text for text in everything), secret


def test_a_stream_that_goes_on_with_heartbeats_only_is_reopened_and_ends_done(stage, attach):
    deltas = [f"s{i:03d} " for i in range(40)]
    setup = stage({"turns": [{"text": deltas, "delay": 0.15}]})  # 6 s of streaming

    def mute(stage):
        stage.mock.journal.wait_for(1, timeout=60)
        stage.proxy.wait_for_events(8, timeout=30)
        assert stage.proxy.mute_streams() == 1  # alive, heartbeats only (opencode #46733)

    timeouts = {"phase": "2m", "stall": "1m", "silent": "2s"}
    run = attach(setup, args=("--json",), during=mute, timeouts=timeouts)
    assert_consistent(run, "done", 0)
    assert_every_part_once(run, setup)
    texts = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["part"]["text"] for line in texts if line["type"] == "text"] == ["".join(deltas)]
    assert any(r["reason"] == "silent" for r in run.records("resynced")), (
        run.stdout,
        run.records("resynced"),
        run.records("notice"),
    )
    notices = [r["text"] for r in run.records("notice")]
    assert any("no part event for 2s" in text for text in notices), notices
    assert run.result["reconnects"] >= 1
    assert run.result["duration"] < 40  # reopened, not left to the stall timeout (1m)


def test_a_prompt_answered_204_and_lost_is_sent_again_and_stored_once(stage, attach):
    setup = stage({"turns": [{"text": "Done the task."}]})
    setup.proxy.swallow_prompts(1)  # opencode #46792: accepted, never started
    run = attach(setup, args=("--json",))
    assert_consistent(run, "done", 0)
    assert len(setup.proxy.swallowed) == 1
    notices = [r["text"] for r in run.records("notice")]
    assert "the prompt was accepted but no turn started; sending it again" in notices
    users = [m for m in setup.snapshot(run.result["session_id"]) if m["info"]["role"] == "user"]
    assert len(users) == 1
    assert [p["text"] for p in users[0]["parts"] if p["type"] == "text"] == ["Do the task."]
    assert len(setup.mock.journal.turns()) == 1


def _cut_for_a_minute_script() -> dict:
    """Six turns of text in unique words, each ending with a tool call but the last, about a
    minute in all: every word must be printed exactly once, whatever the cuts lose."""
    turns = []
    for turn in range(6):
        words = [f"t{turn}w{i:02d} " for i in range(40)]
        step: dict = {"text": words, "delay": 0.2}
        if turn < 5:
            read = {"filePath": "README.md", "limit": 10 + turn}  # not a loop: each one differs
            step["tool_calls"] = [{"name": "read", "arguments": read}]
        turns.append(step)
    return {"turns": turns}


def _words(script: dict) -> list[str]:
    return [word.strip() for turn in script["turns"] for word in turn["text"]]


@pytest.mark.parametrize("mode", ["--plain", "--json"])
def test_a_stream_cut_every_five_events_shows_each_part_once_and_show_replays_it(
    stage, attach, mode
):
    script = _cut_for_a_minute_script()
    setup = stage(script)
    setup.proxy.cut_every(5)
    timeouts = {"phase": "4m", "stall": "1m", "outage": "30s"}
    run = attach(setup, args=(mode,), permissions={"allow": ["read"]}, timeouts=timeouts)
    assert_consistent(run, "done", 0)
    assert run.result["reconnects"] >= 20, run.result["reconnects"]
    if mode == "--json":
        assert_every_part_once(run, setup)
    else:
        words = Counter(word for line in run.stdout.splitlines() for word in line.split())
        assert {word: words[word] for word in _words(script)} == dict.fromkeys(_words(script), 1)
        tools = [line for line in run.stdout.splitlines() if line.startswith("✓ read")]
        assert len(tools) == 5, run.stdout
    shown = runner("show", run.result["transcript"], mode)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == run.stdout.splitlines()
