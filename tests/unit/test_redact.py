"""StreamRedactor: whole secrets in raw frames, split secrets across a part's deltas."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from core.redact import MASK, MAX_HELD, StreamRedactor

pytestmark = pytest.mark.timeout(30)

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "captures"
SECRET = "Zq9-XW_7pK2mVb4nT8yLc1Rf6hGd3Js5"  # shaped like secrets.token_urlsafe(24)


def delta(text: str, part: str = "prt_a", field: str = "text") -> dict:
    props = {"sessionID": "ses_1", "messageID": "msg_1", "partID": part, "field": field}
    return {"type": "message.part.delta", "properties": {**props, "delta": text}}


def emitted(redactor: StreamRedactor, events: list[dict]) -> list[str]:
    return [redactor.event(event)["properties"]["delta"] for event in events]


S = SECRET
DELTAS = [
    (
        "split_in_three",
        ["out: Zq9-X", "W_7pK2mVb4nT8y", "Lc1Rf6hGd3Js5 done"],
        ["out: ", "", f"{MASK} done"],
    ),
    ("whole_in_one", [f"a {S} b"], [f"a {MASK} b"]),
    ("ends_exactly_at_cut", [S[:10], S[10:]], ["", MASK]),
    ("near_miss_released_intact", ["key Zq9-XW", "_7pK nope"], ["key ", "Zq9-XW_7pK nope"]),
    ("near_miss_then_secret", ["Zq9", f"!{S}"], ["", f"Zq9!{MASK}"]),
    ("self_overlap_keeps_the_real_start", ["xZq9-Zq9-X", S[5:]], ["xZq9-", MASK]),
    ("two_secrets_split", [f"{S[:3]}", f"{S[3:]}{S[:20]}", f"{S[20:]}."], ["", MASK, f"{MASK}."]),
    ("single_first_char_held", ["abc Z", "ebra"], ["abc ", "Zebra"]),
    ("no_secret_at_all", ["hello ", "world"], ["hello ", "world"]),
]


@pytest.mark.parametrize(
    ("deltas", "expected"), [r[1:] for r in DELTAS], ids=[r[0] for r in DELTAS]
)
def test_redactor_deltas_of_one_part(deltas: list[str], expected: list[str]) -> None:
    redactor = StreamRedactor((SECRET,))
    out = emitted(redactor, [delta(d) for d in deltas])
    assert out == expected
    assert all(SECRET not in piece for piece in out)
    # Nothing is lost or added: the emitted text is the input text with its secrets masked
    # (here every stream ends on text that cannot start a secret, so nothing stays held).
    assert "".join(out) == "".join(deltas).replace(SECRET, MASK)
    assert redactor.holding == 0


def test_redactor_secret_split_at_every_pair_of_cuts_never_leaks_a_piece() -> None:
    text = f"tool says: {SECRET} and done"
    masked = text.replace(SECRET, MASK)
    pieces = [SECRET[k : k + 3] for k in range(len(SECRET) - 2)]
    assert not any(piece in masked for piece in pieces)
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            redactor = StreamRedactor((SECRET,))
            out = emitted(redactor, [delta(text[:i]), delta(text[i:j]), delta(text[j:])])
            assert "".join(out) == masked, (i, j)
            assert not any(piece in chunk for chunk in out for piece in pieces), (i, j)


def test_redactor_unrelated_parts_and_fields_are_untouched() -> None:
    redactor = StreamRedactor((SECRET,))
    assert emitted(redactor, [delta("a Zq9-XW", part="prt_a")]) == ["a "]
    other = delta("plain text", part="prt_b")
    assert redactor.event(other) is other
    reasoning = delta("_7pK", part="prt_a", field="reasoning")
    assert redactor.event(reasoning) is reasoning  # the fragment belongs to field "text"
    assert emitted(redactor, [delta("_7pK!", part="prt_a")]) == ["Zq9-XW_7pK!"]
    assert redactor.holding == 0


def test_redactor_events_without_secrets_come_back_as_the_same_object() -> None:
    redactor = StreamRedactor((SECRET,))
    for path in sorted(CAPTURES.glob("*.event.jsonl")):
        for line in path.read_text().splitlines():
            data = json.loads(line)["raw"][0].removeprefix("data: ")
            assert redactor.frame(data) is data
            event = json.loads(data)
            assert redactor.event(event) is event
    assert redactor.holding == 0


def test_redactor_frame_masks_a_whole_secret_in_raw_json() -> None:
    redactor = StreamRedactor((SECRET,))
    raw = json.dumps({"type": "message.part.updated", "properties": {"output": f"pw={SECRET}\n"}})
    assert json.loads(redactor.frame(raw))["properties"]["output"] == f"pw={MASK}\n"


def test_redactor_frame_finds_a_secret_that_json_escapes() -> None:
    secret = 'pa"ss\\word\n'
    redactor = StreamRedactor((secret, ""))
    raw = json.dumps({"text": f"x{secret}y"})
    assert json.loads(redactor.frame(raw)) == {"text": f"x{MASK}y"}


def part_updated(part_id: str, **part: object) -> dict:
    return {"type": "message.part.updated", "properties": {"part": {"id": part_id, **part}}}


@pytest.mark.parametrize(
    ("update", "ends"),
    [
        (part_updated("prt_a", type="text", time={"start": 1, "end": 2}), True),
        (part_updated("prt_a", type="tool", state={"status": "completed"}), True),
        (part_updated("prt_a", type="tool", state={"status": "error"}), True),
        (part_updated("prt_a", type="text", time={"start": 1}), False),
        (part_updated("prt_a", type="tool", state={"status": "running"}), False),
        (part_updated("prt_b", type="text", time={"start": 1, "end": 2}), False),
    ],
)
def test_redactor_state_goes_when_the_part_ends(update: dict, ends: bool) -> None:
    redactor = StreamRedactor((SECRET,))
    emitted(redactor, [delta("x Zq9")])
    assert redactor.holding == 1
    assert redactor.event(update) is update
    assert redactor.holding == (0 if ends else 1)


def test_redactor_state_stays_bounded() -> None:
    redactor = StreamRedactor((SECRET,))
    for n in range(MAX_HELD + 10):
        emitted(redactor, [delta("Zq9", part=f"prt_{n}")])
    assert redactor.holding == MAX_HELD
    # The oldest parts were forgotten: their fragment is gone, their next delta is as sent.
    assert emitted(redactor, [delta("-X!", part="prt_0")]) == ["-X!"]
    assert emitted(redactor, [delta("-X!", part=f"prt_{MAX_HELD + 9}")]) == ["Zq9-X!"]


@pytest.mark.parametrize(
    "event",
    [
        {"type": "message.part.delta"},
        {"type": "message.part.delta", "properties": {"partID": "p", "field": "text"}},
        {"type": "message.part.delta", "properties": "odd"},
        {"type": "message.part.updated", "properties": {"part": "odd"}},
        {"properties": {}},
    ],
)
def test_redactor_odd_shapes_pass_through(event: dict) -> None:
    redactor = StreamRedactor((SECRET,))
    emitted(redactor, [delta("Zq9")])  # some state, so updates are inspected
    assert redactor.event(event) is event


def test_redactor_without_secrets_changes_nothing() -> None:
    redactor = StreamRedactor(())
    event = delta("anything at all")
    assert redactor.event(event) is event
    assert redactor.frame("data") == "data"


def test_masked_masks_secrets_in_a_parsed_snapshot_and_keeps_the_rest():
    from core.redact import masked

    snapshot = [{"info": {"id": "m1"}, "parts": [{"text": "key=S3CR3T-PASSWORD!", "n": 1}]}]
    assert masked(snapshot, ("S3CR3T-PASSWORD",)) == [
        {"info": {"id": "m1"}, "parts": [{"text": "key=[redacted]!", "n": 1}]}
    ]
    assert masked(snapshot, ("absent",)) is snapshot
    assert masked(snapshot, ()) is snapshot


def test_masked_finds_a_secret_json_escapes():
    from core.redact import masked

    secret = 'pa"ss\\word'
    snapshot = [{"parts": [{"text": f"the key is {secret}."}]}]
    assert masked(snapshot, (secret,)) == [{"parts": [{"text": "the key is [redacted]."}]}]


def test_secrets_of_the_password_its_credential_and_the_environments_secrets():
    from core.redact import secrets_of

    environ = {
        "OPENAI_API_KEY": "sk-0123456789",
        "github_token": "ghp_abcdefgh",  # the suffix in any case
        "DB_PASSWORD": "short",  # under 8 characters: left alone
        "DATABASE_URL": "postgres://u:p@h/db",  # not secret-looking unless named
        "HOME": "/home/someone",
    }
    found = secrets_of("pw-0123456789", environ)
    assert set(found) == {
        "pw-0123456789",
        base64.b64encode(b"opencode:pw-0123456789").decode(),
        "sk-0123456789",
        "ghp_abcdefgh",
    }
    assert [len(s) for s in found] == sorted((len(s) for s in found), reverse=True)
    assert "postgres://u:p@h/db" in secrets_of(None, environ, ("DATABASE_URL",))
    assert secrets_of(None, {}) == ()


def test_a_secret_inside_a_longer_one_leaves_nothing_of_the_longer():
    from core.redact import StreamRedactor, secrets_of

    secrets = secrets_of(None, {"A_KEY": "abcdefgh", "B_KEY": "xx-abcdefgh-yy"})
    assert StreamRedactor(secrets).frame("v=xx-abcdefgh-yy;") == "v=[redacted];"
