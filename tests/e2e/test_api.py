"""The embedding API: handles, events, cancel, several phases at once, a crashed actor."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from pathlib import Path

import pykka
import pytest
import yaml

from actors.tracker import TrackerActor
from messages.pipeline import SnapshotFetched
from messages.records import PhaseStarted, PromptSent, VerdictReached
from mock import MockLLM
from runner.api import run_phases, start_phase
from runner.phase import load_phase
from tests.e2e.test_cli import PROVIDER
from tests.helpers import PROJECT_ROOT, isolated_env, make_project

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
def phase_file(tmp_path):
    """Factory: a phase file on the mock (`{env:MOCK_LLM_URL}`) in its own project."""

    def write(name, **overrides):
        phase = {
            "name": name,
            "prompt": "Say something.",
            "model": "test/mock-model",
            "directory": str(make_project(tmp_path / f"work-{name}")),
            "opencode_config": PROVIDER,
            **overrides,
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(phase))
        return load_phase(path)

    return write


@pytest.fixture
def warm_phase(phase_file, warm_servers, monkeypatch):
    """Factory: `warm_phase(name, script)`: a phase attached to a warm server (`tests.warm`)
    whose mock serves `script`; returns the phase and that mock."""

    def write(name, script, **overrides):
        warm = warm_servers.take(script)
        monkeypatch.setenv("OPENCODE_SERVER_PASSWORD", warm.password)
        return phase_file(name, server={"attach": warm.url}, **overrides), warm.mock

    return write


def test_two_handles_at_once_each_with_events_and_a_result(tmp_path, phase_file):
    env = isolated_env(tmp_path)
    with MockLLM({"turns": [{"text": "Hello from a handle."}]}) as mock:
        seen: list = []
        lock = threading.Lock()

        def on_event(message):
            with lock:
                seen.append(message)

        env = {**env, "MOCK_LLM_URL": mock.url}
        first = start_phase(phase_file("one"), env=env, on_event=on_event)
        second = start_phase(phase_file("two"), env=env)
        events = list(second.events(timeout=120))
        results = [first.result(timeout=120), second.result(timeout=120)]
    assert [r.verdict for r in results] == ["done", "done"], [
        (r.reason, r.server_log_tail) for r in results
    ]
    assert results[0].server_url != results[1].server_url  # each handle owns its server
    assert isinstance(events[0], PhaseStarted)
    assert isinstance(events[-1], VerdictReached)
    assert events[-1].verdict == "done"
    assert any(isinstance(m, PromptSent) for m in seen)
    assert isinstance(seen[-1], VerdictReached)


def test_cancel_aborts_the_session_and_is_interrupted(warm_phase):
    drip = {"text": [f"tick {i} " for i in range(300)], "delay": 0.1}
    phase, mock = warm_phase("slow", {"turns": [drip]})
    handle = start_phase(phase)
    mock.journal.wait_for(1, timeout=60)
    handle.cancel("the embedder changed its mind")
    result = handle.result(timeout=60)
    assert (result.verdict, result.exit_code) == ("interrupted", 130)
    assert result.reason == "the embedder changed its mind"
    assert handle.done


def test_a_crashed_actor_ends_the_phase_as_failed(warm_phase):
    drip = {"text": [f"tick {i} " for i in range(300)], "delay": 0.1}
    phase, mock = warm_phase("crash", {"turns": [drip]})
    handle = start_phase(phase)
    mock.journal.wait_for(1, timeout=60)
    (tracker,) = pykka.ActorRegistry.get_by_class(TrackerActor)
    tracker.stop()
    result = handle.result(timeout=60)
    assert (result.verdict, result.exit_code) == ("failed", 1)
    assert result.reason == "the TrackerActor stopped unexpectedly"


def test_run_phases_shares_one_server(tmp_path, phase_file):
    with MockLLM({"turns": [{"text": "Shared."}]}) as mock:
        env = {**isolated_env(tmp_path), "MOCK_LLM_URL": mock.url}
        results = run_phases([phase_file("a"), phase_file("b")], parallel=2, env=env)
    assert [r.verdict for r in results] == ["done", "done"], [
        (r.reason, r.server_log_tail) for r in results
    ]
    assert results[0].server_url == results[1].server_url


def test_an_actor_that_raises_ends_the_phase_with_the_error(warm_phase):
    drip = {"text": [f"tick {i} " for i in range(300)], "delay": 0.1}
    phase, mock = warm_phase("raise", {"turns": [drip]})
    handle = start_phase(phase)
    mock.journal.wait_for(1, timeout=60)
    (tracker,) = pykka.ActorRegistry.get_by_class(TrackerActor)
    (root,) = tracker.proxy().session_ids().get(timeout=5)
    broken = SnapshotFetched(reason="idle", snapshots=((root, ("not a message",)),), root_idle=True)
    tracker.tell(broken)
    result = handle.result(timeout=60)
    assert (result.verdict, result.exit_code) == ("failed", 1)
    assert result.reason.startswith("the TrackerActor crashed: SnapshotShapeError: ")


def test_a_shared_server_that_cannot_start_fails_every_phase_once(tmp_path, phase_file):
    wrapper = tmp_path / "fake-opencode"
    script = PROJECT_ROOT / "tests" / "fixtures" / "fake_opencode.py"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    wrapper.chmod(0o755)
    phases = [
        phase_file(name, server={"opencode": str(wrapper)}, timeouts={"start": "1s"})
        for name in ("a", "b", "c")
    ]
    env = {**isolated_env(tmp_path), "FAKE_OPENCODE_SILENT": "1"}
    results = run_phases(phases, parallel=3, env=env)
    assert [r.verdict for r in results] == ["failed"] * 3
    assert {r.reason for r in results} == {"opencode did not become healthy within 1s"}
    for result in results:
        assert Path(result.result_path).exists()
        lines = Path(result.transcript).read_text().splitlines()
        assert json.loads(lines[-1])["type"] == "runner.verdict_reached"


def test_phases_asking_for_different_servers_get_different_servers(tmp_path, phase_file):
    other = {**PROVIDER, "small_model": "test/mock-model-2"}
    with MockLLM({"turns": [{"text": "Hi."}]}) as mock:
        env = {**isolated_env(tmp_path), "MOCK_LLM_URL": mock.url}
        phases = [phase_file("a"), phase_file("b", opencode_config=other), phase_file("c")]
        results = run_phases(phases, parallel=3, env=env)
    assert [r.verdict for r in results] == ["done"] * 3
    urls = [r.server_url for r in results]
    assert urls[0] == urls[2] != urls[1]
    assert all(Path(r.server_log).exists() for r in results)


def test_a_slow_on_event_changes_neither_the_verdict_nor_the_duration(warm_phase):
    drip = {"text": [f"tick {i} " for i in range(20)], "delay": 0.2}
    seen, threads, delivered, slow_down = [], set(), threading.Event(), threading.Event()
    slow_down.set()

    def slow(message):
        threads.add(threading.current_thread().name)
        seen.append(message)
        if isinstance(message, VerdictReached):
            delivered.set()
        if slow_down.is_set():
            time.sleep(1)  # the embedder's slow callback under test, not a wait of ours

    # side by side on one server, in the same conditions: one with the slow callback
    specs = [warm_phase(name, {"turns": [drip]}, timeouts={"stall": "1m"}) for name in "ab"]
    handles = [start_phase(specs[0][0]), start_phase(specs[1][0], on_event=slow)]
    fast, slowed = (handle.result(timeout=120) for handle in handles)
    behind = not delivered.is_set()  # the result did not wait for the callback
    slow_down.clear()  # the embedder catches up: everything still reaches it, in order
    assert delivered.wait(30), "the callback never got the verdict"
    assert (fast.verdict, slowed.verdict) == ("done", "done"), slowed.reason
    assert behind
    # A phase that waited on its callback would take a second longer for each message the
    # callback got; the two phases differ by noise only (a bound relative to that second).
    working = [result.attempts[0]["duration"] for result in (fast, slowed)]
    assert abs(working[1] - working[0]) < 0.25 * len(seen), (working, len(seen))
    assert len(seen) >= 8  # so that bound is far below what waiting would have cost
    assert len(threads) == 1  # one observer thread, never a producer's
    assert isinstance(seen[0], PhaseStarted)
    assert isinstance(seen[-1], VerdictReached)


def test_cancel_while_the_server_starts_ends_the_phase_at_once(tmp_path, phase_file):
    wrapper = tmp_path / "fake-opencode"
    script = PROJECT_ROOT / "tests" / "fixtures" / "fake_opencode.py"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    wrapper.chmod(0o755)
    phase = phase_file("never", server={"opencode": str(wrapper)}, timeouts={"start": "30s"})
    env = {**isolated_env(tmp_path), "FAKE_OPENCODE_SILENT": "1"}
    handle = start_phase(phase, env=env)
    handle.cancel("changed my mind")
    result = handle.result(timeout=10)  # not the 30 s start timeout
    assert (result.verdict, result.reason) == ("interrupted", "changed my mind")
    assert result.duration < 10
    lines = Path(result.transcript).read_text().splitlines()
    assert json.loads(lines[-1])["type"] == "runner.verdict_reached"


def test_a_phase_with_its_own_mock_runs_through_the_api_alone(tmp_path):
    example = tmp_path / "hello"
    shutil.copytree(PROJECT_ROOT / "examples" / "hello", example, ignore=ignore_runs)
    handle = start_phase(example / "phase.yaml", env=isolated_env(tmp_path))
    result = handle.result(timeout=120)
    assert (result.verdict, result.exit_code) == ("done", 0), result.reason  # its mock answered


def ignore_runs(_folder, names):
    return [name for name in names if name in ("runs", "notes", "__pycache__")]
