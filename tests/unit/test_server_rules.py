"""Pure rules about the server process."""

from __future__ import annotations

import pytest

from core.errors import ServerStartError
from core.server_rules import (
    check_version,
    is_transient_start_failure,
    migration_failure,
    parse_listening_line,
    parse_version,
    tail_lines,
)

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("opencode server listening on http://127.0.0.1:4096\n", ("http://127.0.0.1:4096", 4096)),
        ("opencode server listening on http://127.0.0.1:51234", ("http://127.0.0.1:51234", 51234)),
        ("Warning: OPENCODE_SERVER_PASSWORD is not set; server is unsecured.", None),
        ("opencode server listening on http://0.0.0.0:4096", None),
        ("", None),
    ],
)
def test_parse_listening_line(line, expected):
    assert parse_listening_line(line) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.18.33", (1, 18, 33)), ("v1.2.3\n", (1, 2, 3)), ("1.18.33-beta.1", (1, 18, 33))],
)
def test_parse_version(text, expected):
    assert parse_version(text) == expected


def test_parse_version_rejects_garbage():
    with pytest.raises(ServerStartError, match="unreadable version 'dev'"):
        parse_version("dev")


def test_check_version_accepts_pinned_and_newer():
    assert check_version("1.18.33", binary="oc") == "1.18.33"
    assert check_version("2.0.0", binary="oc") == "2.0.0"


def test_check_version_refuses_older_with_one_line():
    with pytest.raises(ServerStartError) as caught:
        check_version("1.14.47", binary="/bin/oc")
    assert str(caught.value) == (
        "/bin/oc: opencode 1.14.47 is too old; the runner supports 1.14.48 and newer"
        " (tested: 1.14.48, 1.15.13, 1.17.19, 1.18.33, 2.1.2; `make setup` installs 1.18.33)"
    )


def test_the_oldest_tested_version_passes_the_gate():
    assert check_version("1.14.48", binary="oc") == "1.14.48"


def test_tail_lines_skips_blanks_and_keeps_the_last():
    assert tail_lines("a\n\nb\nc\n  \nd\n", 2) == ("c", "d")
    assert tail_lines("a\n", 0) == ()


def test_tail_lines_drops_colour_codes():
    assert tail_lines("\x1b[91m\x1b[1mError: \x1b[0mUnexpected error\n", 5) == (
        "Error: Unexpected error",
    )


@pytest.mark.parametrize(
    ("tail", "transient"),
    [
        (("Error: Unexpected error", "database is locked"), True),
        (("Error: Unexpected error", "ServeError"), True),  # the chosen port was taken: retry
        (("Error: Unexpected error", "Unrecognized key: bogus"), False),
        ((), False),
    ],
)
def test_is_transient_start_failure(tail, transient):
    assert is_transient_start_failure(tail) is transient


def test_a_failed_migration_is_named_with_its_remedy():
    tail = (
        "INFO  service=db migrating",
        "ERROR failed to run data migrations: table `project` already exists",
    )
    cause = migration_failure(tail, "/home/u/.local/share")
    assert cause == (
        "opencode could not migrate its database in /home/u/.local/share/opencode (a newer"
        " opencode wrote it): run with --isolate (server.isolate: true) for a fresh data folder,"
        " or use that newer opencode"
    )
    assert migration_failure(("ERROR something else",), "/x") is None


def test_a_failed_migration_of_1_14_is_named_too():
    tail = (  # 1.14.48 logs the query that failed, not "failed to run data migrations"
        "INFO  service=db count=19 mode=bundled applying migrations",
        "' Caused by: table `project` already exists cause=DrizzleError: Failed to run the query",
    )
    assert migration_failure(tail, "/d").startswith("opencode could not migrate its database in /d")
