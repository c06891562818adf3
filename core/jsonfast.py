"""JSON on the stream path: orjson where it can, the standard library where orjson refuses.

Why a second JSON library (README, dependency notes; `make bench` measures it): parsing is the
largest single cost of the stream path. On the capture-shaped stream of the benchmarks,
`json.loads` takes about 7.7 µs an event and `orjson.loads` 2.6 µs; encoding an event compactly
takes 9.6 µs with `json` and 0.9 µs with orjson.

The two agree on everything opencode sends: objects keep their key order, strings their
characters, numbers their values. Where orjson is stricter than the standard library, the
standard library answers instead, so no input that parsed before fails now:
- `loads`: lone surrogate escapes (`"\\ud800"`), `NaN`/`Infinity`; text that neither accepts
  raises the standard library's `ValueError`. An integer beyond 64 bits reads as a float, as
  `JSON.parse` reads it (opencode is JavaScript: it never sends more precision than that).
- `compact`/`sorted_keys`: non-string keys, integers beyond 64 bits, strings holding lone
  surrogates. Values neither knows are written as `str(value)`, as `default=str` did. orjson
  writes floats in their shortest form (`1e-05` is `1e-5`): the same number either way.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["compact", "compact_line", "loads", "sorted_keys"]

_STD_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
_STD_SORTED = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode
_SORT = orjson.OPT_SORT_KEYS
_LINE = orjson.OPT_APPEND_NEWLINE


def loads(text: str | bytes) -> Any:
    """Parse JSON text (what `json.loads` accepts, faster)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def compact(value: Any) -> str:
    """JSON text without spaces and with characters as they are, like `JSON.stringify`."""
    try:
        return orjson.dumps(value, default=str).decode()
    except (orjson.JSONEncodeError, UnicodeEncodeError):
        return _STD_COMPACT(value)


def compact_line(value: Any) -> str:
    """`compact(value)` and a newline, built as one string (a large value is not copied again
    to add the newline)."""
    try:
        return orjson.dumps(value, default=str, option=_LINE).decode()
    except (orjson.JSONEncodeError, UnicodeEncodeError):
        return _STD_COMPACT(value) + "\n"


def sorted_keys(value: Any) -> str:
    """Compact JSON text with every object's keys sorted: equal values give equal text."""
    try:
        return orjson.dumps(value, default=str, option=_SORT).decode()
    except (orjson.JSONEncodeError, UnicodeEncodeError):
        return _STD_SORTED(value)
