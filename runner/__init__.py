"""The runner: CLI, embedding API and the supervisor that wires the actors."""
