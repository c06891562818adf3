"""pykka actors, one per concern; each owns its IO and exchanges only `messages`."""

from loguru import logger

from actors._process import ServerSpec
from actors.opencode_client import OpencodeClient
from actors.server import ServerActor

# A library stays quiet unless asked: the CLI (or an embedder) enables these loggers.
logger.disable(__name__)

__all__ = ["OpencodeClient", "ServerActor", "ServerSpec"]
