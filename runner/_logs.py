"""The runner's logger: quiet unless the application enables "runner" (the CLI does)."""

from loguru import logger

logger.disable("runner")

__all__ = ["debug_log", "logger"]


def debug_log(path: str) -> int:
    """Every package's debug lines into `path` (no variable values: no secrets); the sink's
    id, for `logger.remove`."""
    import actors.logs  # noqa: F401 (its `disable` must come before the `enable` below)

    for package in ("actors", "runner", "core"):
        logger.enable(package)
    return logger.add(path, level="DEBUG", diagnose=False)
