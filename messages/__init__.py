"""Frozen dataclasses: the only things actors exchange. Standard library only."""

from messages.server import ServerExited, ServerFailed, ServerReady, ServerStopped
from messages.stream import EventsReceived, StreamConnected, StreamDropped, StreamFailed

__all__ = [
    "EventsReceived",
    "ServerExited",
    "ServerFailed",
    "ServerReady",
    "ServerStopped",
    "StreamConnected",
    "StreamDropped",
    "StreamFailed",
]
