"""What differs between the opencode versions the runner supports, in one place.

Every fact here was measured against the versions `make test-matrix` runs (1.14.48, 1.15.13,
1.17.19 and the pinned 1.18.33); docs/opencode-versions.md says how. What the runner relies on
and found the same everywhere is named too, so a new difference has one obvious home:

- the routes the runner calls (`/session`, `/session/{id}/prompt_async`, `/session/{id}/message`,
  `/session/status`, `/session/{id}/abort`, `/permission/{id}/reply`, `/question/{id}/reject`,
  `/event`) are in every version's OpenAPI, with the same bodies;
- `prompt_async` takes `format` (structured output) in every version;
- the event types the tracker reads are in every version's `Event` union;
- `serve --port 0` binds 4096 first in every version (so the runner picks the port itself).

What differs, in 1.14 (1.14.48) against 1.15.13 and later:
- `/event` closes right after its `server.connected`, every time (with or without `directory`,
  password or not); `/global/event` stays open and carries every directory's events wrapped as
  `{"directory", "project", "payload"}` (and each change again as a `sync` payload). The
  runner reads that one and unwraps its directory's events.
- no `server.heartbeat` (1.15.13 and later: one every 10 s on either route).

Before 1.17.0 (1.15.13 and older; there is no 1.16): a subagent's child session is created with
its parent's deny rules, but they do not hold (the child runs a tool its parent's session denies),
so the runner cannot enforce a phase's permissions inside subagents there (`subagent_rules`).
And before 1.18.17 (bisected: 1.18.16 and older): a provider error that stays retryable (a
persistent 500 with `Retry-After`) is retried until the session is aborted; 1.18.17 and later
give up after 5 retries with a `session.error`. The runner's own budget
(`budgets.provider_retries`) ends it either way, but `opencode run` of those versions never
ends, so that parity script has nothing to compare with there (its test checks the runner alone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# The oldest version the matrix passes; the gate in `server_rules.check_version` uses it.
MIN_VERSION = (1, 14, 48)
TESTED = ("1.14.48", "1.15.13", "1.17.19", "1.18.33", "2.1.2")
PINNED = "1.18.33"  # `make setup` installs it as `opencode`, and 2.1.2 beside it (`.opencode2/`)
PERMISSION_ROUTE = "/permission/{requestID}/reply"
EVENTS = "/event"
GLOBAL_EVENTS = "/global/event"
_SINCE_1_15 = (1, 15, 0)
_GIVES_UP_SINCE = (1, 18, 17)  # bisected: 1.18.16 still retries forever
_SUBAGENT_RULES_SINCE = (1, 17, 0)  # measured: 1.15.13 ignores them, 1.17.0 holds them
HEARTBEAT = 10.0
# opencode 2.x (`@opencode/cli`; ../shared/opencode/PROTOCOL-2.md): another API, under `/api`.
_PROTOCOL_2 = (2, 0, 0)
EVENTS_2 = "/api/event"
PERMISSION_ROUTE_2 = "/api/session/{sessionID}/permission/{requestID}/reply"
HEARTBEAT_2 = 15.0  # an SSE comment, not an event: bytes the watchdog counts all the same


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the runner may expect of one opencode version."""

    version: str
    heartbeat: float | None  # seconds between `server.heartbeat` events; None: it sends none
    event_route: str = EVENTS  # GLOBAL_EVENTS: wrapped events of every directory (v1.unwrap)
    permission_route: str = PERMISSION_ROUTE
    # `prompt_async` takes `format: {"type": "json_schema"}`; False (2.x): the wire asks for a
    # JSON block instead and reads it back (core/protocol/v2.py)
    structured_output: bool = True
    gives_up_retrying: bool = True  # False: a retryable provider error is retried until aborted
    subagent_rules: bool = True  # a child session holds the deny rules it inherits (1.17.0+)
    protocol: int = 1  # the server API: 1 (opencode-ai 1.x) or 2 (@opencode/cli 2.x)

    def as_dict(self) -> dict[str, Any]:
        """For the transcript header and the result JSON."""
        return {
            "heartbeat_s": self.heartbeat,
            "event_route": self.event_route,
            "permission_route": self.permission_route,
            "structured_output": self.structured_output,
            "gives_up_retrying": self.gives_up_retrying,
            "subagent_rules": self.subagent_rules,
            "protocol": self.protocol,
        }


_VERSION = re.compile(r"^(?:opencode )?v?(\d+)\.(\d+)\.(\d+)")  # 2.x: `opencode v2.1.2`


def version_tuple(text: str) -> tuple[int, int, int] | None:
    """`1.18.33` (optionally with a `v` and a suffix) as a comparable tuple; None if unreadable."""
    match = _VERSION.match(text.strip())
    if match is None:
        return None
    major, minor, patch = (int(group) for group in match.groups())
    return major, minor, patch


def capabilities(text: str) -> Capabilities:
    """The capabilities of the version `text`; an unreadable one is taken as the newest 1.x
    (a 2.x server says its version plainly, and the health probe knows its API apart)."""
    version = version_tuple(text) or (1, 999, 0)
    text, gives_up = text.strip(), version >= _GIVES_UP_SINCE
    if version >= _PROTOCOL_2:
        return Capabilities(
            version=text.removeprefix("opencode ").removeprefix("v"),
            heartbeat=HEARTBEAT_2,
            event_route=EVENTS_2,
            permission_route=PERMISSION_ROUTE_2,
            structured_output=False,
            subagent_rules=True,  # measured on 2.1.2: a child asks what its parent asks
            protocol=2,
        )
    subagents = version >= _SUBAGENT_RULES_SINCE
    if version >= _SINCE_1_15:
        return Capabilities(
            version=text, heartbeat=HEARTBEAT, gives_up_retrying=gives_up, subagent_rules=subagents
        )
    return Capabilities(
        version=text,
        heartbeat=None,
        event_route=GLOBAL_EVENTS,
        gives_up_retrying=gives_up,
        subagent_rules=subagents,
    )
