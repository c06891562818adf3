"""The runner installs as a distribution (pyproject.toml) keeping the design's import names, and
says so in one line when another distribution owns one of them."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from tests.helpers import PROJECT_ROOT

pytestmark = pytest.mark.timeout(60)


def test_the_project_declares_its_packages_script_and_plugin():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    assert project["project"]["scripts"] == {"runner": "runner.cli:main"}
    assert project["project"]["entry-points"]["pytest11"] == {"runner.testing": "runner.testing"}
    found = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(name.rstrip("*") for name in found) == sorted(
        ["runner", "actors", "messages", "core", "mock"]
    )


def test_every_runtime_requirement_is_a_dependency():
    """What requirements.txt pins for the runner itself, pyproject.toml requires."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    declared = {
        dep.split(">")[0].split("<")[0].split("=")[0] for dep in project["project"]["dependencies"]
    }
    runtime = []
    for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith("# Tests and tooling"):
            break
        if line and not line.startswith("#"):
            runtime.append(line.split("==")[0])
    assert sorted(runtime) == sorted(declared)


@pytest.mark.parametrize("name", ["core", "mock"])
def test_another_distribution_owning_a_name_fails_the_import_in_one_line(tmp_path, name):
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import runner"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ImportError: runner: the module {name!r} resolves to {tmp_path}")
    assert "virtualenv of its own" in last


def test_the_runners_own_names_import():
    proc = subprocess.run(
        [sys.executable, "-c", "import runner, actors, core, messages, mock"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
