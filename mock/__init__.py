"""A scripted OpenAI-compatible LLM server to run behind the real `opencode serve`.

`MockLLM(script)` serves `GET /v1/models` and streamed `POST /v1/chat/completions` on a
loopback port; each request's turn is chosen from the conversation (the number of assistant
messages), faults are addressed by turn and attempt, and every request lands in `journal`.
Subagent conversations (opencode's `task` tool) are answered from the script's `subagents`
branches, picked by their first user message, so they do not replay the main turns.
`python -m mock SCRIPT` runs the same server from the command line. The script format is
described in `mock._script` (canonical turns) and `mock._flat` (flat CodeCome actions).
`FaultProxy` sits between the runner and opencode and cuts, stalls or refuses `/event`.
This package imports only the standard library (and PyYAML, for YAML scripts).
"""

from mock._config import opencode_provider_config
from mock._journal import Journal, JournalEntry
from mock._model import (
    Branch,
    Fault,
    Script,
    ScriptError,
    ToolCall,
    Turn,
    Usage,
    select_fault,
)
from mock._script import load_script, parse_script
from mock._server import MockLLM
from mock.proxy import FaultProxy

__all__ = [
    "Branch",
    "Fault",
    "FaultProxy",
    "Journal",
    "JournalEntry",
    "MockLLM",
    "Script",
    "ScriptError",
    "ToolCall",
    "Turn",
    "Usage",
    "load_script",
    "opencode_provider_config",
    "parse_script",
    "select_fault",
]
