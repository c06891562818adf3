#!/usr/bin/env bash
# Runs the example phase offline: starts the mock LLM on a free loopback port, points opencode
# at it through MOCK_LLM_URL (the phase's opencode_config reads `{env:MOCK_LLM_URL}`), and runs
# the phase with any extra flags given (e.g. --json, --plain, --thinking).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-$here/../../.venv/bin/python}
coproc MOCK { exec "$py" -m mock "$here/mock-script.json"; }
trap 'kill "$MOCK_PID" 2>/dev/null || true' EXIT
read -r line <&"${MOCK[0]}"
export MOCK_LLM_URL=${line##* }
"$py" -m runner "$here/phase.yaml" "$@"
