"""The runner: CLI, embedding API and the supervisor that wires the actors.

Importing the package costs nothing: `python -m runner` starts opencode before it imports the
heavy parts (pykka, requests, loguru), so the server boots while Python loads them.
"""
