"""core.jsonfast: orjson's speed without losing anything the standard library accepted."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from core import jsonfast
from tests.helpers import CAPTURES

pytestmark = pytest.mark.timeout(30)


def test_loads_reads_what_json_reads():
    text = '{"b": 1, "a": [1.5, "é", null, true], "c": {"d": -2e-05}}'
    parsed = jsonfast.loads(text)
    assert parsed == json.loads(text)
    assert list(parsed) == ["b", "a", "c"]  # key order as sent


@pytest.mark.parametrize(
    "text",
    ['"\\ud800"', "NaN", '{"x": Infinity}'],
    ids=["lone-surrogate", "nan", "infinity"],
)
def test_loads_falls_back_where_orjson_is_stricter(text):
    parsed = jsonfast.loads(text)
    expected = json.loads(text)
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(parsed)
    else:
        assert parsed == expected


def test_loads_reads_an_integer_beyond_64_bits_as_javascript_does():
    assert jsonfast.loads("123456789012345678901234567890") == 1.2345678901234568e29


def test_loads_raises_value_error_on_bad_json():
    with pytest.raises(ValueError, match="Expecting value"):
        jsonfast.loads('{"a": ')


def test_compact_writes_like_json_stringify():
    value = {"type": "text", "part": {"text": "héllo ✓", "n": 3, "ok": False, "none": None}}
    assert jsonfast.compact(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize(
    "value",
    [{1: "int key"}, {"n": 2**70}, {"s": "\ud800"}],
    ids=["int-key", "big-int", "lone-surrogate"],
)
def test_compact_falls_back_where_orjson_refuses(value):
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert jsonfast.compact(value) == expected


def test_compact_writes_unknown_values_as_text():
    assert jsonfast.compact({"path": Path("/tmp/x")}) == '{"path":"/tmp/x"}'


def test_sorted_keys_is_equal_for_equal_values_in_any_order():
    one = {"b": {"y": 1, "x": 2}, "a": [3]}
    other = {"a": [3], "b": {"x": 2, "y": 1}}
    assert jsonfast.sorted_keys(one) == jsonfast.sorted_keys(other)
    assert jsonfast.sorted_keys({2: "a", 1: "b"}) == jsonfast.sorted_keys({1: "b", 2: "a"})


def test_every_captured_event_reads_and_writes_as_json_does():
    lines = [
        raw.removeprefix("data: ")
        for path in sorted(CAPTURES.rglob("*.jsonl"))
        for record in path.read_text(encoding="utf-8").splitlines()
        for raw in json.loads(record).get("raw", ())
        if raw.startswith("data: ")
    ]
    assert len(lines) > 100, f"too few captured events under {CAPTURES}"
    for line in lines:
        value = json.loads(line)
        assert jsonfast.loads(line) == value
        assert json.loads(jsonfast.compact(value)) == value


@pytest.mark.parametrize(
    "value",
    [{"type": "text", "text": "héllo\nworld"}, {1: "int key"}, {"s": "\ud800"}],
    ids=["orjson", "int-key-fallback", "lone-surrogate-fallback"],
)
def test_compact_line_is_compact_and_one_newline(value):
    assert jsonfast.compact_line(value) == jsonfast.compact(value) + "\n"
