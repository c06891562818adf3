"""The actors' logger: quiet unless the application enables "actors" (the CLI does)."""

from loguru import logger

logger.disable("actors")

__all__ = ["logger"]
