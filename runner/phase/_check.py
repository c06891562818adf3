"""Value checkers for phase files: each cleans one value or raises `Invalid` saying why.

Checkers know nothing of key paths: a section calls `at(key, checker, value)`, which prefixes
the key to any `Invalid` coming out, so the path grows outward (`[1]`, `frontmatter[1]`,
`done.frontmatter[1]`) and the top level adds the file name once.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import string
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from runner.phase._spec import TIME_FORMAT

T = TypeVar("T")

IDENTIFIER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ENV_NAME = VAR_NAME  # an environment variable name: the same rule
MODEL = re.compile(r"[^/\s]+/\S+")
_PLAIN_KEY = re.compile(r"[\w.-]+")
_NUMBER = r"\d+(?:\.\d+)?"
_DURATION = re.compile(
    rf"(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m)?(?:(?P<s>{_NUMBER})s)?(?:(?P<ms>{_NUMBER})ms)?"
)
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
DURATION_KIND = "a duration like 90s, 10m, 1h30m or a number of seconds"


class Invalid(Exception):  # noqa: N818 (a value judgement, caught and re-raised as PhaseFileError)
    """One problem with one value; `where` grows as enclosing sections re-raise it."""

    def __init__(self, problem: str, where: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.where = where

    def under(self, prefix: str) -> Invalid:
        """The same problem, one level further out."""
        if not self.where:
            return Invalid(self.problem, prefix)
        sep = "" if self.where.startswith("[") else "."
        return Invalid(self.problem, f"{prefix}{sep}{self.where}")

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}" if self.where else self.problem


def at(where: str, check: Callable[[Any], T], value: Any) -> T:
    """`check(value)`, with `where` prefixed to the key path of any problem it finds."""
    try:
        return check(value)
    except Invalid as exc:
        raise exc.under(where) from None


def show(value: Any) -> str:
    """A short, one-line, YAML-flavoured rendering of a value for an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, int | float):
        return repr(value)
    kinds = {list: "a list", dict: "a mapping"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def segment(key: Any) -> str:
    """A mapping key as it appears in a key path (quoted when it is not a plain word)."""
    return key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else repr(key)


def expected(kind: str, value: Any) -> Invalid:
    """The usual complaint: what was wanted, and what was found."""
    return Invalid(f"expected {kind}, got {show(value)}")


def did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    """The closest of `choices` to `word`, if any is close enough to suggest."""
    import difflib  # (only when a phase file has a mistake: not before every spawn)

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def keys(value: Any, known: Sequence[str], elsewhere: dict[str, str] | None = None) -> dict:
    """A mapping (null is empty) whose keys are all in `known`; `elsewhere` maps stray leaves."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise expected("a mapping", value)
    for key in value:
        if key not in known:
            raise Invalid(_unknown(str(key), known, elsewhere or {}), segment(key))
    return value


def _unknown(key: str, known: Sequence[str], elsewhere: dict[str, str]) -> str:
    guess = did_you_mean(key, known)
    if guess is None and (leaf := did_you_mean(key, list(elsewhere))):
        guess = elsewhere[leaf]
    if guess is None and (dotted := did_you_mean(key, list(elsewhere.values()))):
        guess = dotted
    if guess is not None:
        return f"unknown key (did you mean {guess!r}?)"
    return f"unknown key (expected one of: {', '.join(known)})"


def optional(check: Callable[[Any], T]) -> Callable[[Any], T | None]:
    """`check`, except that null means 'not set'."""
    return lambda value: None if value is None else check(value)


def text(value: Any) -> str:
    """A non-blank string."""
    if not isinstance(value, str):
        raise expected("a string", value)
    if not value.strip():
        raise Invalid("must not be empty")
    return value


def flag(value: Any) -> bool:
    """A boolean (YAML true/false)."""
    if not isinstance(value, bool):
        raise expected("true or false", value)
    return value


def count(value: Any) -> int:
    """A non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise expected("a non-negative integer", value)
    return value


def at_least(minimum: int) -> Callable[[Any], int]:
    """A checker accepting an integer of at least `minimum`."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise expected(f"an integer of at least {minimum}", value)
        return value

    return check


def amount(value: Any) -> float:
    """A non-negative number (an amount of money)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise expected("a non-negative number", value)
    return float(value)


def choice(*options: str) -> Callable[[Any], str]:
    """A checker accepting exactly one of `options`."""
    wanted = " or ".join(repr(option) for option in options)
    return lambda value: value if value in options else _raise(expected(wanted, value))


def _raise(exc: Exception) -> Any:
    raise exc


def identifier(value: Any) -> str:
    """A name fit for file names and banners: letters, digits, '-', '_', '.'."""
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise expected("an identifier (letters, digits, '-', '_', '.')", value)
    return value


def model(value: Any) -> str:
    """An opencode model reference: `provider/model`."""
    if not isinstance(value, str) or not MODEL.fullmatch(value):
        raise expected("provider/model", value)
    return value


def env_names(value: Any) -> tuple[str, ...]:
    """A list (null is empty) of environment variable names."""
    return tuple(at(f"[{index}]", _env_name, name) for index, name in enumerate(names(value)))


def _env_name(value: str) -> str:
    if not ENV_NAME.fullmatch(value):
        raise Invalid(f"expected an environment variable name, got {value!r}")
    return value


def names(value: Any) -> tuple[str, ...]:
    """A list (null is empty) of non-blank strings, as a tuple."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise expected("a list of strings", value)
    return tuple(at(f"[{index}]", text, item) for index, item in enumerate(value))


def parse_duration(text: str) -> float:
    """Seconds in `90s`, `10m`, `1h30m`, `500ms` or a bare number; ValueError otherwise."""
    stripped = text.strip()
    if re.fullmatch(_NUMBER, stripped):
        return float(stripped)
    match = _DURATION.fullmatch(stripped)
    if not stripped or match is None:
        raise ValueError(f"not a duration: {text!r}")
    parts = match.groupdict()
    return sum(float(n) * _UNIT_SECONDS[unit] for unit, n in parts.items() if n is not None)


def duration(value: Any) -> float:
    """A positive, finite duration: a number of seconds or a string for `parse_duration`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise expected(DURATION_KIND, value)
    try:
        seconds = parse_duration(value) if isinstance(value, str) else float(value)
    except ValueError:
        raise expected(DURATION_KIND, value) from None
    if not math.isfinite(seconds):
        raise expected(DURATION_KIND, value)
    if seconds <= 0:
        raise Invalid(f"must be greater than zero, got {show(value)}")
    return seconds


def loopback_url(value: Any) -> str:
    """An `http://` base URL on a loopback address (trailing slash dropped)."""
    url = text(value).strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        raise expected("an http:// URL such as http://127.0.0.1:4096", value) from None
    if parts.scheme != "http" or not parts.hostname:
        raise expected("an http:// URL such as http://127.0.0.1:4096", value)
    if parts.username is not None or parts.password is not None:
        raise Invalid("credentials do not belong in the URL")
    try:
        parts.port  # noqa: B018 (reading it validates it)
    except ValueError:
        raise Invalid(f"bad port in {show(value)}") from None
    if not _is_loopback(parts.hostname):
        raise Invalid(f"{parts.hostname!r} is not a loopback address (loopback only)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise expected("a base URL with no path, query or fragment", value)
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def render_output_path(template: str, name: str, time: datetime | str) -> str:
    """`template` with `{name}` and `{time}` filled in; ValueError for anything else."""
    stamp = time if isinstance(time, str) else time.strftime(TIME_FORMAT)
    if not template.isprintable():
        raise ValueError(f"bad template {template!r}: control characters")
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from None
    for _literal, field, spec, conversion in fields:
        if field is None:
            continue
        if field not in ("name", "time") or spec or conversion:
            shown = field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise ValueError(
                f"unknown placeholder {{{shown}}} in {template!r} (use {{name}} and {{time}})"
            )
    return template.format(name=name, time=stamp)


def resolve_path(raw: str, base: Path, home: str | None) -> Path:
    """`raw` with a leading `~` expanded, made absolute against `base`, normalised."""
    if not raw.isprintable():  # control characters in a path are a mistake, and unprintable
        raise Invalid(f"expected a path, got {show(raw)}")
    if raw == "~" or raw.startswith("~/"):
        if not home:
            raise Invalid("cannot expand '~': HOME is not set")
        raw = home + raw[1:]
    return Path(os.path.normpath(base / raw))
