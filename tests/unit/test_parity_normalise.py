"""The parity normaliser: what it takes out, what it keeps, and that a real change shows."""

from __future__ import annotations

import difflib

import pytest

from mock._parity_normalise import LEGITIMATE, MAX_STRING, dumped, normalise, parse

pytestmark = pytest.mark.timeout(10)

PLACES = {"/tmp/x/project": "<project>", "http://127.0.0.1:4242": "<mock>"}


def text_line(part_id, message_id, text, when=1):
    return {
        "type": "text",
        "timestamp": when,
        "sessionID": "ses_dd38b7394ffeZbVM7PoD51sAPV",
        "part": {
            "id": part_id,
            "messageID": message_id,
            "type": "text",
            "text": text,
            "time": {"start": when, "end": when},
        },
    }


def step(kind, message_id="msg_22c7490840017j8TA7dPu8J1xo"):
    return {"type": kind, "part": {"messageID": message_id, "snapshot": "b598514"}}


def test_ids_become_placeholders_numbered_by_first_appearance_among_their_kind():
    first = text_line("prt_22c74963e001TkDFhWnyMThBsE", "msg_22c7490840017j8TA7dPu8J1xo", "a")
    second = text_line("prt_22c749643001uGebZfytMQbUyT", "msg_22c7490840017j8TA7dPu8J1xo", "b")
    out = normalise([first, second], PLACES)
    assert [line["part"]["id"] for line in out] == ["<prt 1>", "<prt 2>"]
    assert {line["part"]["messageID"] for line in out} == {"<msg 1>"}  # shared, still shared
    assert out[0]["sessionID"] == "<ses 1>"


def test_the_runners_own_part_ids_on_2_x_are_ids_too():
    mine = text_line(
        "prt_msg_22c7490840017j8TA7dPu8J1xo_text_0", "msg_22c7490840017j8TA7dPu8J1xo", "a"
    )
    (out,) = normalise([mine], PLACES, line=2)
    assert (out["part"]["id"], out["part"]["messageID"]) == ("<prt 1>", "<msg 1>")


def test_2_x_run_shapes_meet_the_runners():
    theirs = [
        {
            "type": "tool_use",
            "part": {
                "id": "call_1",
                "partID": "prt_22c74963e001TkDFhWnyMThBsE",
                "state": {"status": "completed", "title": "read", "metadata": {"content": []}},
            },
        },
        {
            "type": "error",
            "error": {"type": "provider.invalid-request", "message": "bad", "status": 400},
        },
        {"type": "step_finish", "part": {"tokens": {"input": 1}}},
    ]
    ours = [
        {
            "type": "tool_use",
            "part": {
                "callID": "call_1",
                "id": "prt_msg_22c7490840017j8TA7dPu8J1xo_tool_call_1",
                "state": {"status": "completed", "metadata": {"truncated": False}},
            },
        },
        {
            "type": "error",
            "error": {"name": "APIError", "data": {"message": "bad", "statusCode": 400}},
        },
        {"type": "step_finish", "part": {"tokens": {"input": 1, "total": 1}}},
    ]
    assert normalise(theirs, PLACES, line=2) == normalise(ours, PLACES, line=2)
    assert normalise(theirs, PLACES) != normalise(ours, PLACES)  # 1.x is compared as it is


def test_times_snapshots_places_and_long_strings_are_taken_out():
    line = text_line("prt_22c74963e001TkDFhWnyMThBsE", "msg_22c7490840017j8TA7dPu8J1xo", "")
    line["part"]["text"] = "see /tmp/x/project/README.md at http://127.0.0.1:4242/v1 " + "x" * 999
    line["part"]["snapshot"] = "abc"
    (out,) = normalise([line], PLACES)
    assert "timestamp" not in out
    assert "time" not in out["part"]
    assert out["part"]["snapshot"] == "<snapshot>"
    shortened = out["part"]["text"]
    assert shortened.startswith("see <project>/README.md at <mock>/v1 ")
    assert shortened[MAX_STRING:].startswith("… (1036 chars, sha256 ")  # after the places


def test_ids_inside_strings_are_renamed_like_whole_ones():
    line = {"type": "tool_use", "part": {"output": '<task id="ses_dd387bc5cffeRpReXm72XD8hlO">'}}
    (out,) = normalise([line], {})
    assert out["part"]["output"] == '<task id="<ses 1>">'


def tool_line(part_id, name):
    return {"type": "tool_use", "part": {"id": part_id, "tool": name, "state": {"status": "ok"}}}


def test_tools_called_together_are_compared_in_any_order_but_nothing_else_is():
    read = tool_line("prt_22c74963e001TkDFhWnyMThBsE", "read")
    grep = tool_line("prt_22c749643001uGebZfytMQbUyT", "grep")
    text = text_line("prt_22c749695001qka0UZx6nR23W1", "msg_22c7490840017j8TA7dPu8J1xo", "t")
    one = normalise([step("step_start"), read, grep, text, step("step_finish")], {})
    other = normalise([step("step_start"), grep, read, text, step("step_finish")], {})
    assert dumped(one) == dumped(other)
    moved = normalise([step("step_start"), text, read, grep, step("step_finish")], {})
    assert dumped(moved) != dumped(one)


def test_a_lost_tail_of_a_long_string_shows():
    long = "x" * (MAX_STRING + 50)
    whole = normalise([text_line("prt_22c74963e001TkDFhWnyMThBsE", "m", long)], {})
    cut = normalise([text_line("prt_22c74963e001TkDFhWnyMThBsE", "m", long[:-1])], {})
    assert dumped(whole) != dumped(cut)


@pytest.mark.parametrize("kind", sorted(LEGITIMATE))
def test_lines_one_tool_prints_alone_are_dropped(kind):
    assert normalise([{"type": kind, "verdict": "done"}], {}) == []


def test_a_changed_text_shows_in_the_diff():
    before = dumped(normalise([text_line("prt_22c74963e001TkDFhWnyMThBsE", "m", "hello")], {}))
    after = dumped(normalise([text_line("prt_22c74963e001TkDFhWnyMThBsE", "m", "hullo")], {}))
    diff = list(difflib.unified_diff(before, after, lineterm=""))
    changed = [line for line in diff if line[:1] in "-+" and line[:3] not in ("---", "+++")]
    assert changed == ['-  "text": "hello",', '+  "text": "hullo",'], diff


def test_parse_keeps_json_lines_only():
    assert parse('{"type": "text"}\nnot json\n{broken\n{"type": "x"}\n') == [
        {"type": "text"},
        {"type": "x"},
    ]


def test_2_x_grep_files_in_any_order_read_the_same():
    def grep(*files):
        output = "Found 3 matches\n" + "\n\n\n".join(files) + "\n"
        return [{"type": "tool_use", "part": {"tool": "grep", "state": {"output": output}}}]

    readme, greet = "<p>/README.md:\n  Line 4: hi", "<p>/src/greet.py:\n  Line 2: a\n\n  Line 3: b"
    assert normalise(grep(readme, greet), PLACES, line=2) == normalise(
        grep(greet, readme), PLACES, line=2
    )
    assert normalise(grep(readme, greet), PLACES) != normalise(grep(greet, readme), PLACES)
