"""The runner: CLI, embedding API and the supervisor that wires the actors."""

from loguru import logger

# A library stays quiet unless asked: the CLI (or an embedder) enables these loggers.
logger.disable(__name__)
