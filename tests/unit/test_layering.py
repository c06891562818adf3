"""The house's rules, read from the imports and calls (no code is run).

The floors only point down: `runner` (the CLI, the embedding API, the executors) stands on
`actors` (pykka actors and their IO), which stand on `messages` (what crosses a thread) and
`core` (the sans-IO protocol and policies); `mock` (the scripted LLM and the fault proxy)
imports none of them, and only `runner` imports it (its embedded mock). No module imports a
private (`_name`) module or name of another package, nor calls another object's private method;
no import cycle anywhere, whether the import runs at load time, inside a function or only for
the type checker; the pure floors import no actor library, HTTP client, thread or clock.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT

pytestmark = pytest.mark.timeout(60)

FLOORS = {"core": 0, "messages": 1, "actors": 2, "runner": 3}
MOCK = "mock"
PACKAGES = (*FLOORS, MOCK)
# What the pure floors may not import: actors, HTTP, sockets, processes, threads and clocks.
IMPURE = frozenset(
    {
        "pykka",
        "requests",
        "urllib3",
        "socket",
        "subprocess",
        "threading",
        "concurrent",
        "asyncio",
        "queue",
        "time",
        "datetime",
    }
)
PURE = frozenset({"core", "messages"})
# Besides the standard library, the pure floors and the mock import only libraries that do no
# IO: orjson parses and writes JSON on the stream path (core/jsonfast.py), pyyaml reads mock
# scripts.
THIRD_PARTY = {"core": {"orjson"}, "messages": set(), MOCK: {"yaml"}}
# Private-looking methods that are public API of the standard library's named tuples.
NAMEDTUPLE = frozenset({"_replace", "_asdict", "_make", "_fields"})


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen from `module` at `line`."""

    module: str
    target: str  # the module imported, or the package a name was taken from
    names: tuple[str, ...]  # the names taken (`from target import ...`), () for `import target`
    line: int


@dataclass(frozen=True)  # (cached_property needs no __slots__)
class Tree:
    """The modules of the project's packages: name -> source path."""

    modules: Mapping[str, Path]

    @functools.cached_property
    def syntax(self) -> dict[str, ast.Module]:
        return {name: ast.parse(path.read_text(), str(path)) for name, path in self.modules.items()}

    @classmethod
    def read(cls, root: Path, packages: Iterable[str] = PACKAGES) -> Tree:
        modules = {}
        for package in packages:
            for path in sorted((root / package).rglob("*.py")):
                parts = path.relative_to(root).with_suffix("").parts
                name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                modules[name] = path
        return cls(modules)

    def imports(self) -> Iterator[Import]:
        for module, syntax in self.syntax.items():
            for node in ast.walk(syntax):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        yield Import(module, alias.name, (), node.lineno)
                elif isinstance(node, ast.ImportFrom):
                    target = self._absolute(module, node)
                    yield Import(module, target, tuple(a.name for a in node.names), node.lineno)

    def edges(self) -> dict[str, set[str]]:
        """module -> the project's modules it imports (a name that is a module counts as it)."""
        graph: dict[str, set[str]] = {name: set() for name in self.modules}
        for imp in self.imports():
            targets = [f"{imp.target}.{n}" for n in imp.names] or [imp.target]
            for target in targets:
                found = self._owner(target) or self._owner(imp.target)
                if found is not None and found != imp.module:
                    graph[imp.module].add(found)
        return graph

    def _owner(self, dotted: str) -> str | None:
        while dotted and dotted not in self.modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    def _absolute(self, module: str, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = module.split(".")
        if self.modules[module].name != "__init__.py":
            package = package[:-1]
        base = package[: len(package) - node.level + 1]
        return ".".join([*base, node.module] if node.module else base)


def top(name: str) -> str:
    return name.partition(".")[0]


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


# -- the rules, each a list of violations (one line each) -----------------------------------------


def upward_imports(tree: Tree) -> list[str]:
    """Imports between packages that do not point down a floor (or from `runner` to `mock`)."""
    found = []
    for imp in tree.imports():
        source, target = top(imp.module), top(imp.target)
        if target not in PACKAGES or target == source:
            continue
        allowed = (source, target) == ("runner", MOCK) or (
            source in FLOORS and target in FLOORS and FLOORS[target] < FLOORS[source]
        )
        if not allowed:
            found.append(f"{imp.module}:{imp.line} imports {imp.target} ({source} -> {target})")
    return found


def private_imports(tree: Tree) -> list[str]:
    """A private module, or a private name, of another package."""
    found = []
    for imp in tree.imports():
        if top(imp.target) not in PACKAGES or top(imp.target) == top(imp.module):
            continue
        parts = imp.target.split(".")[1:]
        names = [n for n in imp.names if is_private(n)]
        if any(map(is_private, parts)) or names:
            what = imp.target + (f" ({', '.join(names)})" if names else "")
            found.append(f"{imp.module}:{imp.line} imports the private {what}")
    return found


def private_calls(tree: Tree) -> list[str]:
    """`other._method(...)`: a call to a private method of anything but `self` or `cls`."""
    found = []
    for module, syntax in tree.syntax.items():
        for node in ast.walk(syntax):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            name, owner = node.func.attr, node.func.value
            if not is_private(name) or name in NAMEDTUPLE:
                continue
            if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
                continue
            if isinstance(owner, ast.Call) and getattr(owner.func, "id", None) == "super":
                continue
            found.append(f"{module}:{node.lineno} calls {ast.unparse(node.func)}()")
    return found


def cycles(tree: Tree) -> list[str]:
    """Every import cycle (a strongly connected set of modules), sorted."""
    graph = tree.edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[str] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(" <-> ".join(sorted(members)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def impure_imports(tree: Tree) -> list[str]:
    """An actor library, HTTP, a socket, a process, a thread or a clock in a pure floor."""
    return [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in tree.imports()
        if top(imp.module) in PURE and top(imp.target) in IMPURE
    ]


def foreign_imports(tree: Tree) -> list[str]:
    """A library outside the standard one where only `THIRD_PARTY` may be used."""
    found = []
    for imp in tree.imports():
        source, target = top(imp.module), top(imp.target)
        if source not in THIRD_PARTY or target in PACKAGES or target in sys.stdlib_module_names:
            continue
        if target not in THIRD_PARTY[source]:
            found.append(f"{imp.module}:{imp.line} imports {imp.target} (not the standard library)")
    return found


RULES = {
    "upward_imports": upward_imports,
    "private_imports": private_imports,
    "private_calls": private_calls,
    "cycles": cycles,
    "impure_imports": impure_imports,
    "foreign_imports": foreign_imports,
}
MODULE_RULES = {name: rule for name, rule in RULES.items() if name != "cycles"}


PROJECT = Tree.read(PROJECT_ROOT)


@functools.cache
def violations() -> dict[str, list[str]]:
    """module -> what it breaks, every rule but the cycles (which take the whole graph)."""
    found: dict[str, list[str]] = {name: [] for name in PROJECT.modules}
    for rule in MODULE_RULES.values():
        for line in rule(PROJECT):
            found[line.partition(":")[0]].append(line)
    return found


@pytest.mark.parametrize("module", sorted(PROJECT.modules))
def test_the_module_keeps_the_rules(module: str) -> None:
    assert violations()[module] == []


def test_no_import_cycle() -> None:
    assert cycles(PROJECT) == []


def test_every_floor_exists() -> None:
    for package in PACKAGES:
        assert (PROJECT_ROOT / package / "__init__.py").exists(), package


# -- each rule sees a planted violation ----------------------------------------------------------

PLANTED = {
    "upward_imports": {"core/ids.py": "from actors import server\n", "actors/server.py": ""},
    "private_imports": {"runner/api.py": "from actors._process import ServerSpec\n"},
    "private_calls": {"runner/api.py": "def f(proxy):\n    return proxy._admit()\n"},
    "cycles": {
        "mock/a.py": "from mock import b\n",
        "mock/b.py": "import typing\nif typing.TYPE_CHECKING:\n    from mock.a import x\n",
    },
    "impure_imports": {"core/ids.py": "import time\n"},
    "foreign_imports": {"messages/x.py": "import rich\n"},
}


def plant(root: Path, files: Mapping[str, str]) -> Tree:
    for package in PACKAGES:
        (root / package).mkdir()
        (root / package / "__init__.py").write_text("")
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "actors" / "_process.py").write_text("ServerSpec = None\n")
    return Tree.read(root)


@pytest.mark.parametrize("rule", RULES)
def test_a_planted_violation_is_found(tmp_path: Path, rule: str) -> None:
    tree = plant(tmp_path, PLANTED[rule])
    found = RULES[rule](tree)
    assert len(found) == 1, found
    for other, check in RULES.items():
        if other != rule:
            assert check(tree) == [], other  # each plant breaks its own rule only


def test_relative_imports_resolve_to_the_module(tmp_path: Path) -> None:
    tree = plant(
        tmp_path, {"runner/phase/__init__.py": "from . import derive\nfrom .. import cli\n"}
    )
    (tmp_path / "runner" / "phase" / "derive.py").write_text("from .._logs import x\n")
    tree = Tree.read(tmp_path)
    targets = {(i.module, i.target) for i in tree.imports()}
    assert ("runner.phase", "runner.phase") in targets
    assert ("runner.phase", "runner") in targets
    assert ("runner.phase.derive", "runner._logs") in targets
