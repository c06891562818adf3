"""The phase's `done` checks (docs/phase-file.md, `done`): artifacts, front matter, a command.

`take_baseline` stats the artifact files when the phase starts; `run_checks` looks again when
the agent has finished and reports every failure as a paragraph fit for a follow-up prompt.

Globs are relative to the directory (pathlib semantics: `**` spans folders, hidden files match,
symlinked folders are not descended by `**`, a trailing `**` means every file below). Only
regular files (or symlinks to them) count as matches.

A file counts as created or modified during this run when it matches an artifact glob and it was
not in the baseline, or its `(mtime_ns, size)` changed. Coarse-mtime filesystems (1-2 s) can hide
a quick rewrite that keeps the size, so files under 1 MiB also get a SHA-256 at baseline (within
a 32 MiB total budget) and an unchanged stamp is confirmed by hashing again. Each artifact glob
must match at least one such file on its own.
"""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml

from actors._command import CommandGuard, run_command

HASH_MAX_FILE = 1 << 20  # files at most this big get a content hash at baseline
HASH_BUDGET = 32 << 20  # total bytes hashed at baseline, so a huge tree stays cheap

CheckKind = Literal["artifacts", "frontmatter", "command", "structured"]
FrontMatterRule = tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True, slots=True, kw_only=True)
class DoneCriteria:
    """What `done` demands: artifact globs, front-matter rules `(globs, keys)` and a command."""

    artifacts: tuple[str, ...] = ()
    frontmatter: tuple[FrontMatterRule, ...] = ()
    command: str | None = None
    command_timeout: float = 300.0
    schema: Mapping[str, Any] | None = None  # `output_schema`: the structured result must fit

    @property
    def empty(self) -> bool:
        """True when no check is configured, so every finish passes."""
        nothing = not self.artifacts and not self.frontmatter
        return nothing and self.command is None and self.schema is None

    @classmethod
    def from_checks(
        cls, done, *, command_timeout: float = 300.0, schema: Mapping[str, Any] | None = None
    ) -> DoneCriteria:
        """Build from the phase file's `DoneChecks` (duck-typed: `runner` is not imported)."""
        rules = tuple((tuple(c.globs), tuple(c.required)) for c in done.frontmatter)
        return cls(
            artifacts=tuple(done.artifacts),
            frontmatter=rules,
            command=done.command,
            command_timeout=command_timeout,
            schema=schema,
        )


@dataclass(frozen=True, slots=True)
class _Stamp:
    """A file's identity at baseline: mtime, size and, for small files, a content hash."""

    mtime_ns: int
    size: int
    digest: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactBaseline:
    """The artifact files present at phase start, by relative path, with their stamps."""

    files: Mapping[str, _Stamp] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckFailure:
    """One failed check, with a paragraph the agent can act on."""

    kind: CheckKind
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    """Every failure of one run of the checks; `passed` when there is none."""

    passed: bool
    failures: tuple[CheckFailure, ...] = ()

    @property
    def text(self) -> str:
        """The failure details as one block for a follow-up prompt."""
        return "\n\n".join(failure.detail for failure in self.failures)


def repairable(report: CheckReport) -> bool:
    """True when a check failed: after a finish the agent called done, a failed check (an
    artifact missing or unchanged, front matter, the command, the structured result) is a
    repair, whose prompt names what failed; a resume is for a turn cut short."""
    return not report.passed


def _matches(directory: Path, pattern: str) -> list[Path]:
    """The files matching one glob under `directory`, sorted; an unusable glob matches none."""
    if pattern.endswith("**"):
        pattern += "/*"
    try:
        return sorted(p for p in directory.glob(pattern) if p.is_file())
    except (ValueError, NotImplementedError, OSError):
        return []


def _rel(directory: Path, path: Path) -> str:
    return path.relative_to(directory).as_posix()


def _digest(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


def _stamp(path: Path, budget: list[int] | None = None) -> _Stamp | None:
    """The file's `(mtime_ns, size)` and, if small and within `budget`, its hash."""
    try:
        info = path.stat()
    except OSError:
        return None
    digest = None
    if budget is not None and info.st_size <= min(HASH_MAX_FILE, budget[0]):
        budget[0] -= info.st_size
        digest = _digest(path)
    return _Stamp(info.st_mtime_ns, info.st_size, digest)


def take_baseline(directory: Path, criteria: DoneCriteria) -> ArtifactBaseline:
    """Record every file matching an artifact glob now, before the agent works."""
    budget = [HASH_BUDGET]
    files: dict[str, _Stamp] = {}
    for pattern in criteria.artifacts:
        for path in _matches(directory, pattern):
            rel = _rel(directory, path)
            if rel not in files and (stamp := _stamp(path, budget)) is not None:
                files[rel] = stamp
    return ArtifactBaseline(files=MappingProxyType(files))


def _touched(directory: Path, path: Path, baseline: ArtifactBaseline) -> bool:
    """True if `path` was created or modified since the baseline."""
    before = baseline.files.get(_rel(directory, path))
    now = _stamp(path)
    if before is None or now is None:
        return now is not None
    if (before.mtime_ns, before.size) != (now.mtime_ns, now.size):
        return True
    return before.digest is not None and _digest(path) != before.digest


def _check_artifacts(
    directory: Path, patterns: Iterable[str], baseline: ArtifactBaseline
) -> Iterator[CheckFailure]:
    for pattern in patterns:
        found = _matches(directory, pattern)
        if any(_touched(directory, path, baseline) for path in found):
            continue
        detail = f"no file matching '{pattern}' was created or modified during this run"
        if found:
            detail += f" ({len(found)} matching file(s) exist but are unchanged since it began)"
        yield CheckFailure(kind="artifacts", detail=detail)


def _read_front_matter(path: Path) -> tuple[str | None, str | None]:
    """`(yaml_text, None)`, or `(None, problem)` when the file has no usable front matter."""
    try:
        with path.open(encoding="utf-8-sig") as handle:
            if handle.readline().rstrip() != "---":
                return None, "no front matter (the file must start with a '---' line)"
            lines = []
            for line in handle:
                if line.rstrip() in ("---", "..."):
                    return "".join(lines), None
                lines.append(line)
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    except OSError as exc:
        return None, f"could not be read: {exc.strerror or exc}"
    return None, "front matter is not closed (no '---' line after the opening one)"


def _front_matter_problem(path: Path, required: tuple[str, ...]) -> str | None:
    """What is wrong with the file's front matter, or None if it holds every required key."""
    text, problem = _read_front_matter(path)
    if text is None:
        return problem
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return f"front matter is not valid YAML: {' '.join(str(exc).split())}"
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        return f"front matter must be a YAML mapping of keys to values, got {kind}"
    missing = [key for key in required if key not in data]
    if missing:
        return f"front matter is missing required keys: {', '.join(missing)}"
    return None


def _check_frontmatter(directory: Path, rules: Iterable[FrontMatterRule]) -> Iterator[CheckFailure]:
    for globs, required in rules:
        seen: dict[str, Path] = {}
        for pattern in globs:
            found = _matches(directory, pattern)
            if not found:
                yield CheckFailure(kind="frontmatter", detail=f"no file matches '{pattern}'")
            seen.update((_rel(directory, path), path) for path in found)
        for rel, path in seen.items():
            if (problem := _front_matter_problem(path, required)) is not None:
                yield CheckFailure(kind="frontmatter", detail=f"{rel}: {problem}")


def _check_command(
    directory: Path, command: str, timeout: float, guard: CommandGuard | None
) -> Iterator[CheckFailure]:
    name = f"done.command '{command}'"
    try:
        returncode, output = run_command(command, directory, timeout, guard)
    except OSError as exc:
        yield CheckFailure(kind="command", detail=f"{name} could not be started: {exc}")
        return
    if returncode == 0:
        return
    if returncode is None:
        what = f"timed out after {timeout:g}s (its process group was killed)"
    elif returncode < 0:
        what = f"was killed by signal {-returncode} ({signal.strsignal(-returncode)})"
    else:
        what = f"exited {returncode}"
    detail = f"{name} {what}:\n{output}" if output.strip() else f"{name} {what} (no output)"
    yield CheckFailure(kind="command", detail=detail)


def _check_structured(schema: Mapping[str, Any] | None, value: Any) -> Iterator[CheckFailure]:
    """With `output_schema`: a structured result that validates against it."""
    if schema is None:
        return
    if value is None:
        detail = "no structured result: call the StructuredOutput tool with the result"
        yield CheckFailure(kind="structured", detail=detail)
        return
    import jsonschema  # 0.05 s of every run's start: only for phases that have a schema

    error = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(schema)(schema).iter_errors(value)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        detail = f"the structured result does not fit the schema at {where}: {error.message}"
        yield CheckFailure(kind="structured", detail=detail)


def run_checks(
    directory: Path,
    criteria: DoneCriteria,
    baseline: ArtifactBaseline,
    guard: CommandGuard | None = None,
    structured: Any = None,
) -> CheckReport:
    """Run every check (structured result, artifacts, front matter, command, in that order) and
    report all failures."""
    failures = [
        *_check_structured(criteria.schema, structured),
        *_check_artifacts(directory, criteria.artifacts, baseline),
        *_check_frontmatter(directory, criteria.frontmatter),
    ]
    if criteria.command is not None:
        failures += _check_command(directory, criteria.command, criteria.command_timeout, guard)
    return CheckReport(passed=not failures, failures=tuple(failures))
