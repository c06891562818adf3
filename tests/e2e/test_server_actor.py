"""ServerActor against the real opencode binary (and a fake one for refusals)."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
import requests

from actors import OpencodeClient, ServerSpec
from actors.process import PINNED_BINARY
from core.errors import UpstreamHTTPError
from messages import ServerExited, ServerFailed, ServerReady, ServerStopped
from tests.helpers import PROJECT_ROOT, Inbox, group_alive, isolated_env, make_project, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


@pytest.fixture
def spec_for(tmp_path):
    """Build a ServerSpec in an isolated HOME for the given binary and options."""
    env = isolated_env(tmp_path)
    project = make_project(tmp_path)

    def build(**overrides) -> ServerSpec:
        options = {
            "directory": str(project),
            "log_path": str(tmp_path / "server.log"),
            "env": env,
            "start_timeout": 30.0,
        }
        options.update(overrides)
        return ServerSpec(**options)

    return build


@pytest.fixture
def fake_binary(tmp_path):
    """An executable that behaves like opencode but reports a version of our choosing."""
    wrapper = tmp_path / "fake-opencode"
    script = PROJECT_ROOT / "tests" / "fixtures" / "fake_opencode.py"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_server_starts_healthy_with_auth_and_refuses_requests_without_it(spec_for):
    inbox = Inbox()
    server = start_server(spec_for(), inbox)
    ready = inbox.expect((ServerReady, ServerFailed), timeout=40)
    assert isinstance(ready, ServerReady), ready
    assert ready.url.startswith("http://127.0.0.1:")
    assert ready.version == "1.18.33"
    assert ready.password not in repr(ready)

    client = OpencodeClient(ready.url, password=ready.password)
    assert client.health()["healthy"] is True
    anonymous = OpencodeClient(ready.url, password=None)
    with pytest.raises(UpstreamHTTPError) as caught:
        anonymous.health()
    assert caught.value.status == 401
    bare = requests.get(ready.url + "/global/health", timeout=5)
    assert bare.status_code == 401

    server.stop()
    stopped = inbox.expect(ServerStopped, timeout=15)
    assert stopped.attached is False
    assert not group_alive(ready.pid)


def test_password_never_reaches_the_log_or_argv(spec_for, tmp_path):
    inbox = Inbox()
    server = start_server(spec_for(), inbox)
    ready = inbox.expect(ServerReady, timeout=40)
    with open(f"/proc/{ready.pid}/cmdline", "rb") as handle:
        argv = handle.read().decode()
    assert ready.password not in argv
    assert "127.0.0.1" in argv
    server.stop()
    inbox.expect(ServerStopped, timeout=15)
    log_text = (tmp_path / "server.log").read_text()
    assert "opencode server listening on" in log_text
    assert ready.password not in log_text


@pytest.mark.serial  # a bound in seconds
def test_sigkill_of_the_server_is_reported_within_two_seconds(spec_for):
    inbox = Inbox()
    server = start_server(spec_for(), inbox)
    ready = inbox.expect(ServerReady, timeout=40)
    killed_at = time.monotonic()
    os.kill(ready.pid, signal.SIGKILL)
    exited = inbox.expect(ServerExited, timeout=2.0)
    assert time.monotonic() - killed_at < 2.0
    assert exited.exit_code == -signal.SIGKILL
    assert "SIGKILL" in exited.reason
    assert any("listening on" in line for line in exited.log_tail)
    server.stop()
    assert not group_alive(ready.pid)


def test_stop_aborts_and_leaves_no_process_of_the_group(spec_for):
    inbox = Inbox()
    server = start_server(spec_for(), inbox)
    ready = inbox.expect(ServerReady, timeout=40)
    assert group_alive(ready.pid)
    server.stop()
    stopped = inbox.expect(ServerStopped, timeout=15)
    assert stopped.exit_code == -signal.SIGTERM
    assert not group_alive(ready.pid)


@pytest.mark.parametrize("sweep", [True, False])
def test_stop_aborts_busy_sessions_first_unless_told_every_session_is_idle(
    spec_for, fake_binary, tmp_path, sweep
):
    requests_log = tmp_path / "requests.log"
    env = {"FAKE_OPENCODE_VERSION": "1.18.33", "FAKE_OPENCODE_REQUESTS": str(requests_log)}
    inbox = Inbox()
    server = start_server(spec_for(binary=fake_binary, env=env), inbox)
    assert isinstance(inbox.expect((ServerReady, ServerFailed), timeout=20), ServerReady)
    server.proxy().prepare_stop(quick=False, sweep=sweep).get(timeout=5)
    server.stop()
    assert inbox.expect(ServerStopped, timeout=15).exit_code == -signal.SIGTERM
    swept = ["GET /session/status", "POST /session/ses_busy/abort"]
    assert requests_log.read_text().splitlines() == ["GET /global/health", *swept[: 2 * sweep]]


def test_missing_binary_gives_one_line_error(spec_for, tmp_path):
    inbox = Inbox()
    missing = str(tmp_path / "no-such-opencode")
    start_server(spec_for(binary=missing), inbox)
    failed = inbox.expect(ServerFailed, timeout=10)
    assert failed.reason == (
        f"opencode binary not found: {missing} (run `make setup` or set server.opencode)"
    )
    assert "\n" not in failed.reason


def test_too_old_version_gives_one_line_error(spec_for, fake_binary):
    inbox = Inbox()
    start_server(spec_for(binary=fake_binary, env={"FAKE_OPENCODE_VERSION": "1.2.3"}), inbox)
    failed = inbox.expect((ServerFailed, ServerReady), timeout=20)
    assert isinstance(failed, ServerFailed)
    assert failed.reason == (
        f"{fake_binary}: opencode 1.2.3 is too old; the runner supports 1.14.48 and newer"
        " (tested: 1.14.48, 1.15.13, 1.17.19, 1.18.33, 2.1.2; `make setup` installs 1.18.33)"
    )


def test_server_that_never_listens_fails_at_the_start_timeout(spec_for, fake_binary):
    inbox = Inbox()
    spec = spec_for(binary=fake_binary, env={"FAKE_OPENCODE_SILENT": "1"}, start_timeout=1.0)
    start_server(spec, inbox)
    failed = inbox.expect((ServerFailed, ServerReady), timeout=10)
    assert isinstance(failed, ServerFailed)
    assert failed.reason == "opencode did not become healthy within 1s"


def test_attach_mode_neither_starts_nor_stops_a_server(spec_for):
    inbox = Inbox()
    owner = start_server(spec_for(), inbox)
    ready = inbox.expect(ServerReady, timeout=40)

    attached_inbox = Inbox()
    attached = start_server(
        spec_for(attach_url=ready.url, attach_password=ready.password), attached_inbox
    )
    attach_ready = attached_inbox.expect((ServerReady, ServerFailed), timeout=10)
    assert isinstance(attach_ready, ServerReady)
    assert attach_ready.attached is True
    assert attach_ready.pid is None
    attached.stop()
    assert attached_inbox.expect(ServerStopped, timeout=5).attached is True
    assert OpencodeClient(ready.url, password=ready.password).health()["healthy"] is True
    owner.stop()


def test_attach_with_a_wrong_password_fails_at_once(spec_for):
    inbox = Inbox()
    owner = start_server(spec_for(), inbox)
    ready = inbox.expect(ServerReady, timeout=40)
    attached_inbox = Inbox()
    start_server(spec_for(attach_url=ready.url, attach_password="wrong"), attached_inbox)
    failed = attached_inbox.expect((ServerFailed, ServerReady), timeout=5)
    assert isinstance(failed, ServerFailed)
    assert failed.reason == (
        f"opencode at {ready.url} rejected the password in OPENCODE_SERVER_PASSWORD (HTTP 401)"
    )
    owner.stop()


def test_pinned_binary_is_installed_by_setup():
    assert PINNED_BINARY.exists(), "run `make setup`"


def test_a_start_that_loses_the_database_race_is_tried_again(spec_for, fake_binary, tmp_path):
    counter = tmp_path / "starts"
    env = {
        "FAKE_OPENCODE_VERSION": "1.18.33",
        "FAKE_OPENCODE_LOCKED_UNTIL": "2",
        "FAKE_OPENCODE_COUNTER": str(counter),
    }
    inbox = Inbox()
    start_server(spec_for(binary=fake_binary, env=env), inbox)
    ready = inbox.expect((ServerReady, ServerFailed), timeout=20)
    assert isinstance(ready, ServerReady), ready
    assert counter.read_text() == "xxx"


def test_a_start_that_keeps_losing_the_race_fails_with_the_log(spec_for, fake_binary, tmp_path):
    env = {
        "FAKE_OPENCODE_VERSION": "1.18.33",
        "FAKE_OPENCODE_LOCKED_UNTIL": "9",
        "FAKE_OPENCODE_COUNTER": str(tmp_path / "starts"),
    }
    inbox = Inbox()
    start_server(spec_for(binary=fake_binary, env=env), inbox)
    failed = inbox.expect((ServerReady, ServerFailed), timeout=20)
    assert isinstance(failed, ServerFailed)
    assert failed.reason == "opencode exited with exit code 1 before it was ready"
    assert "database is locked" in failed.log_tail
    assert (tmp_path / "starts").read_text() == "xxx"
