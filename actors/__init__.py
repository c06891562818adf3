"""pykka actors, one per concern; each owns its IO and exchanges only `messages`.

The re-exports load on first use (PEP 562), so importing a light module of the package (the
process helpers, say) does not import pykka and requests with it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "OpencodeClient": "actors.opencode_client",
    "Prespawned": "actors.process",
    "ServerActor": "actors.server",
    "ServerSpec": "actors.process",
}

__all__ = ["OpencodeClient", "Prespawned", "ServerActor", "ServerSpec"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'actors' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
