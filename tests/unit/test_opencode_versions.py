"""The version adapter: what each supported opencode offers, from its version alone."""

from __future__ import annotations

import socket

import pytest

from actors.process import (
    PINNED_BINARY,
    ServerSpec,
    binary_version,
    data_env,
    free_port,
    resolve_binary,
)
from actors.sse_reader import ReconnectPolicy
from core.errors import ServerStartError
from core.opencode_versions import (
    EVENTS,
    GLOBAL_EVENTS,
    HEARTBEAT,
    MIN_VERSION,
    PINNED,
    TESTED,
    capabilities,
    version_tuple,
)
from messages.server import ServerReady

pytestmark = pytest.mark.timeout(10)


def test_the_oldest_tested_version_is_the_minimum():
    assert version_tuple(TESTED[0]) == MIN_VERSION
    assert [version_tuple(v) for v in TESTED] == sorted(version_tuple(v) for v in TESTED)


@pytest.mark.parametrize(
    ("version", "heartbeat"),
    [("1.14.48", None), ("1.14.99", None), ("1.15.0", HEARTBEAT), ("1.18.33", HEARTBEAT)],
)
def test_heartbeats_start_with_1_15(version, heartbeat):
    assert capabilities(version).heartbeat == heartbeat


def test_an_unreadable_version_is_taken_as_the_newest():
    assert version_tuple("dev") is None
    assert capabilities("dev").heartbeat == HEARTBEAT


def test_the_capabilities_are_written_as_plain_json_values():
    caps = capabilities("v1.14.48-beta").as_dict()
    assert caps == {
        "heartbeat_s": None,
        "event_route": "/global/event",
        "permission_route": "/permission/{requestID}/reply",
        "structured_output": True,
        "gives_up_retrying": False,
        "subagent_rules": False,
        "protocol": 1,
    }


def test_a_ready_server_names_its_capabilities():
    ready = ServerReady(
        url="u", version="1.14.48", password=None, pid=1, log_path=None, attached=False
    )
    assert ready.capabilities.heartbeat is None
    assert ready.capabilities.version == "1.14.48"


def test_a_stream_without_heartbeats_may_stay_quiet_for_minutes():
    assert ReconnectPolicy(heartbeat=10.0).quiet == 30.0
    assert ReconnectPolicy(heartbeat=None).quiet == 300.0


def test_retryable_errors_end_on_their_own_from_1_18():
    assert not capabilities("1.18.16").gives_up_retrying
    assert capabilities("1.18.17").gives_up_retrying


def test_subagents_hold_their_inherited_rules_from_1_17():
    assert not capabilities("1.14.48").subagent_rules
    assert not capabilities("1.15.13").subagent_rules
    assert capabilities("1.17.0").subagent_rules
    assert capabilities("1.18.33").subagent_rules


def test_1_14_reads_the_global_stream():
    assert capabilities("1.14.48").event_route == GLOBAL_EVENTS
    assert capabilities("1.15.13").event_route == EVENTS


def test_runner_opencode_names_the_binary_of_phases_that_name_none(monkeypatch):
    monkeypatch.setenv("RUNNER_OPENCODE", "/opt/oc-1.14/opencode")
    assert resolve_binary(None) == "/opt/oc-1.14/opencode"
    assert resolve_binary("./mine") == "./mine"  # server.opencode wins
    monkeypatch.delenv("RUNNER_OPENCODE")
    assert resolve_binary(None) in (str(PINNED_BINARY), "opencode")


def test_the_server_port_is_a_free_one_and_never_opencodes_default():
    port = free_port()
    assert port != 4096
    with socket.socket() as probe:  # free: it can be bound at once
        probe.bind(("127.0.0.1", port))


OPENCODE2 = (
    PINNED_BINARY.parent.parent.parent / ".opencode2" / "node_modules" / ".bin" / "opencode2"
)


def test_a_binarys_version_is_read_from_its_package_without_starting_it():
    assert binary_version(str(PINNED_BINARY)) == PINNED
    assert binary_version(str(OPENCODE2)) == "2.1.2"
    assert binary_version("/nonexistent/opencode") is None


def test_opencode_2_gets_a_database_of_its_own_and_never_1_xs(tmp_path):
    spec = ServerSpec(directory=str(tmp_path), log_path=str(tmp_path / "log"))
    assert data_env(str(OPENCODE2), spec) == {"OPENCODE_DB": "opencode-2.db"}
    assert data_env(str(PINNED_BINARY), spec) == {}  # 1.x keeps its own as it is
    theirs = ServerSpec(directory=str(tmp_path), log_path="l", env={"OPENCODE_DB": "/d/x.db"})
    assert data_env(str(OPENCODE2), theirs) == {}  # a database of the user's choosing
    shared = ServerSpec(
        directory=str(tmp_path), log_path="l", env={"OPENCODE_DB": "/h/opencode/opencode.db"}
    )
    with pytest.raises(
        ServerStartError, match=r"^server.env: OPENCODE_DB=/h/opencode/opencode.db is"
    ):
        data_env(str(OPENCODE2), shared)
