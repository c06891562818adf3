"""StreamRedactor: keeps secrets (the server's password) out of the events the reader hands on.

Theory of operation
-------------------
A secret can cross the stream in two ways.

Whole, inside one frame (a tool's output in a `message.part.updated`, an error, a title):
`frame(data)` replaces it in the frame's raw JSON text, before parsing. Secrets are searched in
the form JSON text carries them (escaped as `JSON.stringify` escapes strings), so the
replacement never touches JSON syntax; a `token_urlsafe` password needs no escaping at all. A
frame without a secret costs one substring test per secret and comes back unchanged.

Split, across the `message.part.delta` events of one part (a model repeating a tool's output
token by token): `event(event)` keeps, per part and field, the tail that may be the start of a
secret, and releases it at the front of the next delta of the same part and field:

    text = held + delta       (held: what the previous delta of this part/field kept back)
    text = text with every whole secret replaced by MASK
    held = the longest tail of text that is a proper prefix of a secret
    emit   text without that tail

So the concatenation of the emitted deltas is the text with its secrets masked and nothing else
changed, and no emitted delta carries a secret or a piece of one long enough to complete it.
Only a part that holds a fragment has state; it goes when the part ends (`message.part.updated`
whose part has `time.end`, or a tool in state `completed` or `error`). A fragment still held
then is dropped: the part's final text arrives whole in that update, which `frame` has
redacted. At most `MAX_HELD` parts keep state (the oldest is forgotten first), so parts that
never end cannot grow it. An event that needs no change is returned as the same object.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "MAX_HELD", "SECRET_SUFFIXES", "StreamRedactor", "masked", "secrets_of"]

MASK = "[redacted]"
MAX_HELD = 256
# Environment variables whose values are masked wherever they appear: names ending so, and
# those a phase names in `secrets`. Values shorter than `MIN_SECRET` are left alone (masking
# `1` or `on` would mangle every output and protect nothing).
SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
MIN_SECRET = 8


def secrets_of(
    password: str | None, environ: Mapping[str, str], names: Iterable[str] = ()
) -> tuple[str, ...]:
    """Every text to mask: the server's password, its Basic credential (`opencode:password` in
    base64, as an Authorization header carries it), and the values of the secret-looking (or
    `names`d) environment variables; longest first, so a secret inside another is masked
    whole."""
    found: set[str] = set()
    if password:
        found |= {password, base64.b64encode(f"opencode:{password}".encode()).decode()}
    wanted = set(names)
    for name, value in environ.items():
        if (name.upper().endswith(SECRET_SUFFIXES) or name in wanted) and len(value) >= MIN_SECRET:
            found.add(value)
    return tuple(sorted(found, key=lambda secret: (-len(secret), secret)))


_DELTA = "message.part.delta"
_UPDATED = "message.part.updated"
_TOOL_DONE = frozenset({"completed", "error"})


class StreamRedactor:
    """Masks secrets in raw frames and, statefully, across the deltas of a streamed part."""

    __slots__ = ("_held", "_needles", "_secrets")

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        self._needles = tuple(json.dumps(s, ensure_ascii=False)[1:-1] for s in self._secrets)
        self._held: dict[str, dict[str, str]] = {}  # partID -> field -> fragment held back

    @property
    def holding(self) -> int:
        """How many parts hold a fragment back (the state kept)."""
        return len(self._held)

    def frame(self, data: str) -> str:
        """A frame's raw data with every whole secret masked; `data` itself if it had none."""
        for needle in self._needles:
            if needle in data:
                data = data.replace(needle, MASK)
        return data

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event with secrets split across deltas masked; `event` itself if unchanged."""
        kind = event.get("type")
        if kind == _DELTA:
            return self._delta(event)
        if kind == _UPDATED and self._held:
            self._forget_ended(event.get("properties"))
        return event

    def _delta(self, event: dict[str, Any]) -> dict[str, Any]:
        props = event.get("properties")
        if not isinstance(props, dict):
            return event
        part_id, field, delta = props.get("partID"), props.get("field"), props.get("delta")
        if not (isinstance(part_id, str) and isinstance(field, str) and isinstance(delta, str)):
            return event
        fields = self._held.get(part_id)
        text = (fields.pop(field, "") if fields else "") + delta
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        keep = self._tail_to_hold(text)
        if keep:
            self._hold(part_id, field, text[-keep:])
            text = text[:-keep]
        elif fields is not None and not fields:
            del self._held[part_id]
        if text == delta:
            return event
        return {**event, "properties": {**props, "delta": text}}

    def _tail_to_hold(self, text: str) -> int:
        """Length of the longest tail of `text` that is a proper prefix of a secret."""
        best = 0
        for secret in self._secrets:
            # Only the last len(secret) - 1 characters can start a proper prefix; `find` on the
            # first character keeps this cheap (usually no candidate at all).
            start = max(len(text) - len(secret) + 1, 0)
            at = text.find(secret[0], start)
            while at != -1 and len(text) - at > best:
                if secret.startswith(text[at:]):
                    best = len(text) - at
                    break
                at = text.find(secret[0], at + 1)
        return best

    def _hold(self, part_id: str, field: str, fragment: str) -> None:
        fields = self._held.get(part_id)
        if fields is None:
            if len(self._held) >= MAX_HELD:
                del self._held[next(iter(self._held))]  # the oldest part, long silent
            fields = self._held[part_id] = {}
        fields[field] = fragment

    def _forget_ended(self, props: Any) -> None:
        part = props.get("part") if isinstance(props, dict) else None
        if isinstance(part, dict) and part.get("id") in self._held and _ended(part):
            del self._held[part["id"]]


def _ended(part: dict[str, Any]) -> bool:
    """True when no more deltas can come for this part."""
    times = part.get("time")
    if isinstance(times, dict) and times.get("end") is not None:
        return True
    state = part.get("state")
    return isinstance(state, dict) and state.get("status") in _TOOL_DONE


def masked(value: Any, secrets: Iterable[str]) -> Any:
    """`value` (parsed JSON: a resync's snapshot) with every secret in its strings masked;
    the same object when no string holds one."""
    found = tuple(s for s in secrets if s)
    if not found:
        return value
    return _mask(value, found) if _holds(value, found) else value


def _holds(value: Any, secrets: tuple[str, ...]) -> bool:
    """Does a string in `value` hold a secret? (A walk: a large snapshot is not encoded again
    to find out.)"""
    if isinstance(value, str):
        return any(secret in value for secret in secrets)
    if isinstance(value, dict):
        return any(_holds(item, secrets) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_holds(item, secrets) for item in value)
    return False


def _mask(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {key: _mask(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask(item, secrets) for item in value)
    return value
