"""Dependencies point one way (SPEC §4): a test reads every import and checks its direction."""

from __future__ import annotations

import ast
import sys

import pytest

from tests.helpers import PROJECT_ROOT

pytestmark = pytest.mark.timeout(30)

PACKAGES = ("core", "messages", "actors", "runner", "mock")
# What each package may import from the project; everything else must be stdlib or third party.
ALLOWED = {
    "core": {"core"},
    "messages": {"messages", "core"},
    "actors": {"actors", "messages", "core"},
    "runner": {"runner", "actors", "messages", "core", "mock"},  # mock: the embedded default LLM
    "mock": {"mock"},
}
# Pure layers import only the standard library, and libraries that do no IO either: orjson
# parses and writes JSON on the stream path (core/jsonfast.py), pyyaml may read mock scripts.
STDLIB_ONLY = {"core": {"orjson"}, "messages": set(), "mock": {"yaml"}}


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def _modules():
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            yield package, path


@pytest.mark.parametrize(("package", "path"), list(_modules()), ids=lambda v: str(v)[-40:])
def test_imports_point_one_way(package, path):
    for name in _imports(path):
        if name in PACKAGES:
            assert name in ALLOWED[package], f"{path.relative_to(PROJECT_ROOT)} imports {name}"
        elif package in STDLIB_ONLY:
            allowed = name in sys.stdlib_module_names or name in STDLIB_ONLY[package]
            assert allowed, f"{path.relative_to(PROJECT_ROOT)} imports non-stdlib {name}"


def test_every_layer_exists():
    for package in PACKAGES:
        assert (PROJECT_ROOT / package / "__init__.py").exists(), package
