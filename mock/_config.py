"""The opencode config fragment that points a `test` provider at a running mock."""

from __future__ import annotations

from typing import Any


def opencode_provider_config(url: str, model: str = "mock-model") -> dict[str, Any]:
    """The opencode.json content (PROTOCOL.md §0) that routes every model call to `url`."""
    return {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "model": f"test/{model}",
        "small_model": f"test/{model}",
        "provider": {
            "test": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Test Mock",
                "options": {"baseURL": url, "apiKey": "sk-test"},
                "models": {
                    model: {"name": "Mock Model", "limit": {"context": 100000, "output": 4096}},
                },
            },
        },
    }
