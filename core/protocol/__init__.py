"""The protocol seam: what the runner sends to an opencode server, as requests (sans-IO).

A `Wire` builds every request the runner makes of one opencode line (routes, query parameters,
bodies), and turns the line's answers and events into the runner's model (opencode 1.x's
shapes: `core.protocol.wire`). It knows nothing of sockets: `actors.opencode_client` sends what
it builds and decodes the answers. A second protocol (opencode 2.x) is a second `Wire`; the
contract every implementation passes is `tests/unit/test_wire_contract.py`: each request is a
route of that line's OpenAPI document, with declared parameters and a body its schema accepts.

`wire_for(capabilities)` picks the implementation for a server's version.
"""

from __future__ import annotations

from core.opencode_versions import Capabilities
from core.protocol.v1 import WireV1
from core.protocol.v2 import WireV2
from core.protocol.wire import EventDecoder, Request, Wire, segment, split_model

__all__ = [
    "EventDecoder",
    "Request",
    "Wire",
    "WireV1",
    "WireV2",
    "segment",
    "split_model",
    "wire_for",
]


def wire_for(capabilities: Capabilities) -> Wire:
    """The implementation for a server of these capabilities (its version's)."""
    return WireV2(capabilities) if capabilities.protocol == 2 else WireV1(capabilities)
