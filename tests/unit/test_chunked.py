"""The chunked-transfer decoder, at every split point of a recorded-shaped body."""

from __future__ import annotations

import pytest

from core.chunked import ChunkedError, Dechunker

pytestmark = pytest.mark.timeout(10)

EVENTS = [b'data: {"type":"server.connected"}\n\n', b'data: {"n":1}\n\n', b"data: \xc3\xa9\n\n"]
BODY = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in EVENTS) + b"0\r\n\r\n"
PAYLOAD = b"".join(EVENTS)


def test_a_whole_body_gives_the_payload_and_ends():
    dechunker = Dechunker()
    assert dechunker.feed(BODY) == PAYLOAD
    assert dechunker.done


@pytest.mark.parametrize("split", range(1, len(BODY)))
def test_every_split_point_gives_the_same_payload(split):
    dechunker = Dechunker()
    assert dechunker.feed(BODY[:split]) + dechunker.feed(BODY[split:]) == PAYLOAD
    assert dechunker.done


def test_byte_at_a_time():
    dechunker = Dechunker()
    assert b"".join(dechunker.feed(BODY[i : i + 1]) for i in range(len(BODY))) == PAYLOAD


def test_extensions_and_trailers_are_skipped():
    body = b"5;name=value\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"
    dechunker = Dechunker()
    assert dechunker.feed(body) == b"hello"
    assert dechunker.done


def test_a_stream_cut_inside_a_chunk_is_not_done():
    dechunker = Dechunker()
    assert dechunker.feed(BODY[:20]) == PAYLOAD[: 20 - len(b"%x\r\n" % len(EVENTS[0]))]
    assert not dechunker.done


@pytest.mark.parametrize(
    "body",
    [
        *(b"zz\r\n", b"5\r\nhelloXX\r\n", b"1" * 5000, b"-5\r\nhello\r\n", b"\r\n"),
        *(b"0x5\r\nhello\r\n", b"1_0\r\n"),
    ],
    ids=[
        *("not-hex", "no-crlf-after-data", "endless-size-line", "negative", "empty"),
        *("0x-prefix", "underscore"),
    ],
)
def test_garbage_raises(body):
    with pytest.raises(ChunkedError):
        Dechunker().feed(body)


def test_usual_and_unusual_size_lines_mixed_in_one_read():
    """Whole usual chunks take the fast loop; an extension, upper-case hex, a size line of
    more than 16 digits and a data CRLF split from its data fall to the careful path between."""
    data = [b"a" * 26, b"hello", b"b" * 26, b"x", b"tail"]
    body = (
        b"%x\r\n%s\r\n" % (26, data[0])
        + b"5;ext=1\r\nhello\r\n"
        + b"1A\r\n%s\r\n" % data[2]
        + b"00000000000000001\r\nx\r\n"
        + b"4\r\ntail\r\n0\r\n\r\n"
    )
    for cut in range(1, len(body)):
        dechunker = Dechunker()
        assert dechunker.feed(body[:cut]) + dechunker.feed(body[cut:]) == b"".join(data), cut
        assert dechunker.done
