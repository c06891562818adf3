"""pykka actors, one per concern; each owns its IO and exchanges only `messages`."""

from actors._process import ServerSpec
from actors.opencode_client import OpencodeClient
from actors.server import ServerActor

__all__ = ["OpencodeClient", "ServerActor", "ServerSpec"]
