"""The SSE decoder: WHATWG parsing rules, every split point of the recorded streams, EOF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.sse import SseDecoder, SseFrame, parse_event

pytestmark = pytest.mark.timeout(30)

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "captures"
STREAMS = sorted(CAPTURES.glob("*.event.jsonl"))  # `/event` recordings
ALL_STREAMS = sorted(CAPTURES.glob("*event.jsonl"))  # and the `/global/event` ones


def decode(chunks: list[bytes]) -> tuple[list[SseFrame], bool]:
    """Feed `chunks` one by one, then close; return the frames and `truncated`."""
    decoder = SseDecoder()
    frames = [frame for chunk in chunks for frame in decoder.feed(chunk)]
    frames += decoder.close()
    return frames, decoder.truncated


# The recordings are pure ASCII; this variant puts 2-, 3- and 4-byte characters in every event
# (still valid JSON) so that splits also fall inside UTF-8 sequences.
MULTIBYTE = ('"properties":', '"ünï—✓😀":"日本","properties":')


def capture_bytes(path: Path, newline: str = "\n", *, multibyte: bool = False) -> bytes:
    """The byte stream a capture was recorded from, rebuilt with `newline` line endings."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)["raw"]
        if multibyte:
            raw = [r.replace(*MULTIBYTE) for r in raw]
        out.append(newline.join(raw) + newline + newline)
    return "".join(out).encode("utf-8")


def capture_data(path: Path, *, multibyte: bool = False) -> list[str]:
    """The data of every event in a capture (opencode sends one `data:` line per event)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    data = [json.loads(line)["raw"][0].removeprefix("data: ") for line in lines]
    return [d.replace(*MULTIBYTE) for d in data] if multibyte else data


F = SseFrame
RULES = [
    ("lf", [b"data: a\n\n"], [F("a")]),
    ("crlf", [b"data: a\r\n\r\n"], [F("a")]),
    ("cr", [b"data: a\r\rdata: b\r\r"], [F("a"), F("b")]),
    ("mixed_endings", [b"data: a\r\ndata: b\rdata: c\n\n"], [F("a\nb\nc")]),
    ("crlf_split_between_chunks", [b"data: a\r", b"\ndata: b\r\n\r\n"], [F("a\nb")]),
    ("crlf_split_before_blank", [b"data: a\r\n\r", b"\ndata: b\n\n"], [F("a"), F("b")]),
    ("cr_then_cr_across_chunks", [b"data: a\r", b"\r"], [F("a")]),
    ("lone_cr_chunks", [b"data: a", b"\r", b"\n", b"\r", b"\n"], [F("a")]),
    # A line ended by CR or LF, then a blank line ended by CRLF (sseclient-py merges these).
    ("cr_then_crlf_blank", [b"data: a\r\r\ndata: b\n\n"], [F("a"), F("b")]),
    ("lf_then_crlf_blank", [b"data: a\n\r\ndata: b\n\n"], [F("a"), F("b")]),
    ("multi_data_joined", [b"data: a\ndata: b\ndata:\n\n"], [F("a\nb\n")]),
    ("comment_ignored", [b": hi\ndata: a\n: there\n\n:only comment\n\n"], [F("a")]),
    ("one_space_stripped", [b"data:  two\ndata:x\n\n"], [F(" two\nx")]),
    ("no_data_not_dispatched", [b"event: ping\n\nid: 7\n\n\n\n"], []),
    ("empty_data_dispatched", [b"data:\n\ndata\n\n"], [F(""), F("")]),
    ("event_field", [b"event: status\ndata: a\n\ndata: b\n\n"], [F("a", "status"), F("b")]),
    (
        "id_persists",
        [b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"],
        [F("a", None, "1"), F("b", None, "1"), F("c", None, "")],
    ),
    ("id_with_nul_ignored", [b"id: 1\n\nid: 2\x003\ndata: a\n\n"], [F("a", None, "1")]),
    ("unknown_field_ignored", [b"foo: bar\nretry: x\ndata: a\n\n"], [F("a")]),
    ("bom_stripped_once", [b"\xef\xbb", b"\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\n"], [F("a")]),
    ("utf8_split", [b"data: \xc3", b"\xa9\xe2\x82", b"\xac\xf0\x9f\x98", b"\x80\n\n"], [F("é€😀")]),
    ("invalid_utf8_replaced", [b"data: \xff\n\n"], [F("\ufffd")]),
    ("colon_in_value", [b'data: {"a": "b:c"}\n\n'], [F('{"a": "b:c"}')]),
    ("empty_chunks", [b"", b"data: a\n", b"", b"\n", b""], [F("a")]),
]


@pytest.mark.parametrize(("chunks", "expected"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_decoder_rules(chunks: list[bytes], expected: list[SseFrame]) -> None:
    frames, truncated = decode(chunks)
    assert frames == expected
    assert truncated is False


@pytest.mark.parametrize(("chunks", "expected"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_decoder_rules_split_at_every_byte(chunks: list[bytes], expected: list[SseFrame]) -> None:
    stream = b"".join(chunks)
    for cut in range(len(stream) + 1):
        assert decode([stream[:cut], stream[cut:]]) == (expected, False), f"split at byte {cut}"


def test_decoder_frames_come_out_as_soon_as_their_blank_line_arrives() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\ndata: b") == [F("a")]
    assert decoder.feed(b"\n\n") == [F("b")]


def test_decoder_records_retry() -> None:
    decoder = SseDecoder()
    decoder.feed(b"retry: 2500\n\n")
    assert decoder.retry == 2500


TRUNCATED = [
    ("data_without_blank_line", [b"data: a\n"], []),
    ("partial_line", [b"data: a\n\ndata: b"], [F("a")]),
    ("partial_utf8", [b"data: a\n\n\xc3"], [F("a")]),
    ("field_without_blank_line", [b"data: a\n\nevent: x\n"], [F("a")]),
    ("partial_comment", [b"data: a\n\n: keep"], [F("a")]),
    ("cr_ended_data_line", [b"data: a\r"], []),
]


@pytest.mark.parametrize(
    ("chunks", "expected"), [r[1:] for r in TRUNCATED], ids=[r[0] for r in TRUNCATED]
)
def test_decoder_drops_unterminated_frame_at_eof(
    chunks: list[bytes], expected: list[SseFrame]
) -> None:
    frames, truncated = decode(chunks)
    assert frames == expected
    assert truncated is True


@pytest.mark.parametrize(
    "chunks", [[], [b""], [b"data: a\n\n"], [b"data: a\r\n\r\n"], [b": c\n", b"\n"]]
)
def test_decoder_clean_eof_is_not_truncated(chunks: list[bytes]) -> None:
    assert decode(chunks)[1] is False


def test_decoder_close_is_idempotent_and_feed_after_close_raises() -> None:
    decoder = SseDecoder()
    decoder.feed(b"data: a")
    assert decoder.close() == []
    assert decoder.close() == []
    assert decoder.truncated is True
    with pytest.raises(ValueError, match="after close"):
        decoder.feed(b"\n\n")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('{"type": "x", "properties": {}}', {"type": "x", "properties": {}}),
        ("not json", None),
        ("[1, 2]", None),
        ('"text"', None),
        ("", None),
        ("[" * 100_000, None),
    ],
)
def test_parse_event_returns_objects_and_never_raises(data: str, expected: object) -> None:
    assert parse_event(F(data)) == expected


@pytest.mark.parametrize("multibyte", [False, True], ids=["ascii", "utf8"])
@pytest.mark.parametrize("path", ALL_STREAMS, ids=[p.name for p in ALL_STREAMS])
def test_decoder_capture_whole_feed_gives_every_event(path: Path, multibyte: bool) -> None:
    frames, truncated = decode([capture_bytes(path, multibyte=multibyte)])
    assert [f.data for f in frames] == capture_data(path, multibyte=multibyte)
    assert all(f.event is None and f.id is None for f in frames)
    assert all(parse_event(f) is not None for f in frames)
    assert truncated is False


def split_decode(stream: bytes, cut: int) -> tuple[list[SseFrame], bool]:
    """Decode `stream` as two feeds cut at byte `cut`."""
    return decode([stream[:cut], stream[cut:]])


@pytest.mark.parametrize("path", STREAMS, ids=[p.name for p in STREAMS])
def test_decoder_capture_split_at_every_byte(path: Path) -> None:
    stream = capture_bytes(path)
    whole, _ = decode([stream])
    assert [f.data for f in whole] == capture_data(path)
    for cut in range(len(stream) + 1):
        assert split_decode(stream, cut) == (whole, False), f"split at byte {cut}"


def event_offsets(path: Path, newline: str, *, multibyte: bool) -> list[int]:
    """Byte offset of every event's start in the rebuilt stream, plus the stream's length."""
    offsets, total = [0], 0
    for data in capture_data(path, multibyte=multibyte):
        total += len(f"data: {data}{newline}{newline}".encode())
        offsets.append(total)
    return offsets


@pytest.mark.parametrize(
    ("newline", "multibyte"), [("\r\n", False), ("\n", True)], ids=["crlf", "lf-utf8"]
)
@pytest.mark.parametrize("path", ALL_STREAMS, ids=[p.name for p in ALL_STREAMS])
def test_decoder_capture_split_at_every_byte_variants(
    path: Path, newline: str, multibyte: bool
) -> None:
    # Every byte boundary of the stream is cut once, inside a window of the event it falls in
    # and its neighbours (the decoder holds no state across a completed event, so the rest of
    # the stream adds only time: the LF test above cuts the whole stream).
    stream = capture_bytes(path, newline, multibyte=multibyte)
    data = capture_data(path, multibyte=multibyte)
    offsets = event_offsets(path, newline, multibyte=multibyte)
    assert offsets[-1] == len(stream)
    for k in range(len(data)):
        lo, hi = max(k - 1, 0), min(k + 2, len(data))
        window = stream[offsets[lo] : offsets[hi]]
        expected = [SseFrame(d) for d in data[lo:hi]]
        for cut in range(offsets[k] - offsets[lo], offsets[k + 1] - offsets[lo]):
            assert split_decode(window, cut) == (expected, False), f"event {k}, byte {cut}"


@pytest.mark.parametrize("multibyte", [False, True], ids=["ascii", "utf8"])
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_decoder_capture_byte_at_a_time(newline: str, multibyte: bool) -> None:
    path = CAPTURES / "f_reasoning.event.jsonl"
    stream = capture_bytes(path, newline, multibyte=multibyte)
    frames, truncated = decode([stream[i : i + 1] for i in range(len(stream))])
    assert [f.data for f in frames] == capture_data(path, multibyte=multibyte)
    assert truncated is False


def test_decoder_byte_at_a_time_with_multibyte_text() -> None:
    text = "data: héllo wörld — ✓ 😀\r\ndata: 日本語\r\n\r\n: ß\r\ndata: ok\r\n\r\n"
    stream = text.encode("utf-8")
    frames, truncated = decode([stream[i : i + 1] for i in range(len(stream))])
    assert frames == [F("héllo wörld — ✓ 😀\n日本語"), F("ok")]
    assert truncated is False


def test_decoder_capture_cut_mid_event_is_truncated() -> None:
    stream = capture_bytes(CAPTURES / "a_basic.event.jsonl")
    cut = stream.rindex(b"data: ") + 40
    frames, truncated = decode([stream[:cut]])
    assert len(frames) == len(capture_data(CAPTURES / "a_basic.event.jsonl")) - 1
    assert truncated is True


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_decoder_event_larger_than_many_reads(newline: str) -> None:
    big = json.dumps({"type": "message.part.updated", "text": "wörd " * 200_000})
    text = f"id: 7{newline}data: {big}{newline}{newline}data: after{newline}{newline}"
    stream = text.encode("utf-8")
    reads = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    frames, truncated = decode(reads)
    assert frames == [F(big, id="7"), F("after", id="7")]
    assert truncated is False
