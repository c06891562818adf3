"""The runner's logger: quiet unless the application enables "runner" (the CLI does)."""

from loguru import logger

logger.disable("runner")

__all__ = ["logger"]
