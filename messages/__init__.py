"""Frozen dataclasses: the only things actors exchange. Standard library only."""

from messages.server import ServerExited, ServerFailed, ServerReady, ServerStopped

__all__ = [
    "ServerExited",
    "ServerFailed",
    "ServerReady",
    "ServerStopped",
]
