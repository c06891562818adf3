"""The mock LLM over real HTTP: streaming, turn selection, faults, journal, the CLI."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mock import MockLLM, ScriptError, opencode_provider_config, parse_script
from tests.helpers import PROJECT_ROOT

pytestmark = pytest.mark.timeout(30)

WAIT = 5.0
TITLE_SYSTEM = "You are a title generator. You output ONLY a thread title. Nothing else."
SCRIPT = {
    "title": "Scripted title",
    "turns": [
        {
            "reasoning": ["Let me", " think."],
            "text": ["Reading", " a file."],
            "tool_calls": [{"id": "call_1", "name": "read", "arguments": {"filePath": "/x"}}],
        },
        {"text": ["Done", " reading."]},
    ],
}


@pytest.fixture
def start_mock():
    """Start MockLLMs for a test and stop every one of them afterwards."""
    started: list[MockLLM] = []

    def start(script=SCRIPT, **options) -> MockLLM:
        mock = MockLLM(script, **options).start()
        started.append(mock)
        return mock

    yield start
    for mock in started:
        mock.stop()


def _body(assistants=0, *, system="You are opencode.", stream=True):
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Read README"}]
    for n in range(assistants):
        messages.append({"role": "assistant", "content": f"answer {n}"})
        messages.append({"role": "user", "content": "go on"})
    return {"model": "mock-model", "messages": messages, "stream": stream}


def _post(mock, body, *, timeout=WAIT, session=requests):
    return session.post(f"{mock.url}/chat/completions", json=body, stream=True, timeout=timeout)


def _events(response):
    """Every `data:` payload of an SSE response, as text, until the body ends."""
    lines = (line for line in response.iter_lines(chunk_size=None) if line)
    return [line.removeprefix(b"data: ").decode() for line in lines]


def _events_until_error(response):
    """Like `_events`, but a broken body ends the list and is returned as the error."""
    received: list[str] = []
    try:
        for line in response.iter_lines(chunk_size=None):
            if line:
                received.append(line.removeprefix(b"data: ").decode())
    except requests.exceptions.RequestException as exc:
        return received, exc
    return received, None


def _text(events, field="content"):
    chunks = [json.loads(e) for e in events if e != "[DONE]"]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    return "".join(d.get(field) or "" for d in deltas)


def test_streamed_turn_parses_back_into_text_and_tool_call(start_mock):
    mock = start_mock()
    response = _post(mock, _body())
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    events = _events(response)
    assert events[-1] == "[DONE]"
    assert _text(events) == "Reading a file."
    assert _text(events, "reasoning_content") == "Let me think."
    chunks = [json.loads(e) for e in events[:-1]]
    arguments = "".join(
        call["function"].get("arguments", "")
        for c in chunks
        if c["choices"]
        for call in c["choices"][0]["delta"].get("tool_calls", ())
    )
    assert json.loads(arguments) == {"filePath": "/x"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["total_tokens"] > 0


def test_turn_is_chosen_by_the_number_of_assistant_messages(start_mock):
    mock = start_mock()
    texts = [_text(_events(_post(mock, _body(n)))) for n in (1, 0, 2, 5)]
    assert texts == ["Done reading.", "Reading a file.", "Done reading.", "Done reading."]
    assert [(e.turn, e.attempt) for e in mock.journal.turns()] == [(1, 1), (0, 1), (2, 1), (5, 1)]


def test_title_request_gets_the_title_and_does_not_consume_a_turn(start_mock):
    mock = start_mock()
    title = _post(mock, _body(system=TITLE_SYSTEM))
    assert _text(_events(title)) == "Scripted title"
    assert _text(_events(_post(mock, _body()))) == "Reading a file."
    kinds = [(e.kind, e.turn, e.attempt) for e in mock.journal.entries()]
    assert kinds == [("title", None, None), ("turn", 0, 1)]


def test_summary_request_gets_a_fixed_summary(start_mock):
    mock = start_mock()
    body = _body(1, system="You are a context summarization agent. You are given a conversation")
    assert _text(_events(_post(mock, body))).startswith("## Objective\n- Mock summary")
    assert [e.kind for e in mock.journal.entries()] == ["summary"]


BRANCH_SCRIPT = {
    **SCRIPT,
    "subagents": [
        {
            "match": "Explore the repo",
            "title": "explorer",
            "turns": [
                {"text": "Exploring.", "faults": [{"kind": "429", "retry_after": 1}]},
                {"text": "Explored."},
            ],
        },
        {"match": "Explore", "turns": [{"text": "never: the first match wins"}]},
    ],
}


def _task_body(assistants=0):
    body = _body(assistants, system="You are a subagent.")
    body["messages"][1]["content"] = "Task: Explore the repo and report."
    return body


def test_subagent_request_gets_its_branch_turn_and_main_is_unaffected(start_mock):
    mock = start_mock(BRANCH_SCRIPT)
    assert _text(_events(_post(mock, _body()))) == "Reading a file."
    refused = _post(mock, _task_body())
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert _text(_events(_post(mock, _task_body()))) == "Exploring."
    assert _text(_events(_post(mock, _task_body(3)))) == "Explored."
    assert _text(_events(_post(mock, _body(1)))) == "Done reading."
    assert _text(_events(_post(mock, _body(system=TITLE_SYSTEM)))) == "Scripted title"
    seen = [(e.kind, e.branch, e.turn, e.attempt, e.status) for e in mock.journal.entries()]
    assert seen == [
        ("turn", None, 0, 1, 200),
        ("turn", "Explore the repo", 0, 1, 429),
        ("turn", "Explore the repo", 0, 2, 200),
        ("turn", "Explore the repo", 3, 1, 200),
        ("turn", None, 1, 1, 200),
        ("title", None, None, None, 200),
    ]


def test_attempts_are_counted_per_branch(start_mock):
    script = {
        "turns": [{"text": "main", "faults": [{"kind": "500", "attempt": 2}]}],
        "subagents": [
            {"match": "Explore", "turns": [{"text": "sub", "faults": [{"kind": "500"}]}]}
        ],
    }
    mock = start_mock(script)
    explore = _body()
    explore["messages"][1]["content"] = "Explore"
    statuses = [_post(mock, body).status_code for body in (_body(), explore, explore, _body())]
    assert statuses == [200, 500, 200, 500]
    seen = [(e.branch, e.attempt) for e in mock.journal.turns()]
    assert seen == [(None, 1), ("Explore", 1), ("Explore", 2), (None, 2)]


def test_429_with_retry_after_then_success_on_attempt_two(start_mock):
    script = [{"text": "Recovered.", "faults": [{"kind": "429", "retry_after": 1}]}]
    mock = start_mock(script)
    first = _post(mock, _body())
    assert mock.journal.attempts() == {(None, 0): 1}
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "1"
    assert first.json()["error"]["message"] == "Rate limited by mock"
    assert _text(_events(_post(mock, _body()))) == "Recovered."
    assert mock.journal.attempts() == {(None, 0): 2}  # two raw requests, one logical turn
    assert [(e.attempt, e.fault, e.status) for e in mock.journal.turns()] == [
        (1, "429", 429),
        (2, None, 200),
    ]


@pytest.mark.parametrize(
    ("kind", "message", "status"),
    [("500", "Internal boom", 500), ("400", "Bad request from mock", 400)],
)
def test_error_faults_send_json_bodies(start_mock, kind, message, status):
    fault = {"kind": kind, "attempt": "all"}
    if kind == "500":
        fault["message"] = message
    mock = start_mock([{"text": "never", "faults": [fault]}])
    for _ in range(2):
        response = _post(mock, _body())
        assert response.status_code == status
        assert response.json()["error"]["message"] == message
        assert "Retry-After" not in response.headers
    assert [e.status for e in mock.journal.turns()] == [status, status]


def test_stall_fires_the_client_read_timeout(start_mock):
    mock = start_mock([{"text": "late", "faults": [{"kind": "stall", "after_chunks": 1}]}])
    response = _post(mock, _body(), timeout=(WAIT, 0.3))
    received, error = _events_until_error(response)
    response.close()
    assert len(received) == 1
    assert isinstance(error, requests.exceptions.ConnectionError)
    assert mock.journal.turns()[0].fault == "stall"


@pytest.mark.serial  # a bound in seconds
def test_stop_returns_promptly_while_a_stall_is_open(start_mock):
    mock = start_mock([{"text": "late", "faults": [{"kind": "stall"}]}])
    headers_seen = threading.Event()

    def client():
        response = _post(mock, _body(), timeout=(WAIT, 20))
        headers_seen.set()
        return _events_until_error(response)

    with ThreadPoolExecutor(max_workers=1) as pool:
        outcome = pool.submit(client)
        assert headers_seen.wait(WAIT)
        started = time.monotonic()
        mock.stop()
        assert time.monotonic() - started < 2.0
        received, _ = outcome.result(timeout=WAIT)
    assert "[DONE]" not in received


def test_cut_ends_the_stream_without_done(start_mock):
    mock = start_mock([{"text": ["a", "b", "c"], "faults": [{"kind": "cut", "after_chunks": 2}]}])
    received, error = _events_until_error(_post(mock, _body()))
    assert len(received) == 2
    assert "[DONE]" not in received
    assert isinstance(error, requests.exceptions.ChunkedEncodingError)
    # opencode retries a broken stream: the next attempt is served normally.
    assert _text(_events(_post(mock, _body()))) == "abc"


def test_malformed_chunk_is_sent_then_the_stream_goes_on(start_mock):
    mock = start_mock([{"text": ["a", "b"], "faults": [{"kind": "malformed", "after_chunks": 2}]}])
    events = _events(_post(mock, _body()))
    assert events[2] == "{not json"
    assert events[-1] == "[DONE]"
    good = events[:2] + events[3:]
    assert _text(good) == "ab"


def test_drip_spaces_every_chunk(start_mock):
    delay = 0.05
    script = [{"text": ["a", "b", "c"], "faults": [{"kind": "drip", "delay": delay}]}]
    mock = start_mock(script)
    started = time.monotonic()
    arrivals = []
    response = _post(mock, _body())
    for line in response.iter_lines(chunk_size=None):
        if line:
            arrivals.append((time.monotonic(), line))
    events = [line.removeprefix(b"data: ").decode() for _, line in arrivals]
    assert _text(events) == "abc"
    assert events[-1] == "[DONE]"
    times = [at for at, _ in arrivals]
    assert times == sorted(times)
    assert times[-1] - started >= 0.8 * delay * len(arrivals)


def test_turn_delay_spaces_chunks_too(start_mock):
    mock = start_mock([{"text": ["a", "b"], "delay": 0.05}])
    started = time.monotonic()
    events = _events(_post(mock, _body()))
    gaps = len(events) - 1
    assert time.monotonic() - started >= 0.8 * 0.05 * gaps
    assert _text(events) == "ab"


def test_error_after_answers_429_past_n_agent_requests(start_mock):
    mock = start_mock(error_after=(429, 1))
    assert _post(mock, _body()).status_code == 200
    _post(mock, _body(system=TITLE_SYSTEM)).close()  # side requests are never refused
    refused = _post(mock, _body(1))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert [(e.kind, e.status) for e in mock.journal.entries()] == [
        ("turn", 200),
        ("title", 200),
        ("turn", 429),
    ]


def test_non_streamed_request_gets_a_completion(start_mock):
    mock = start_mock()
    response = requests.post(
        f"{mock.url}/chat/completions", json=_body(1, stream=False), timeout=WAIT
    )
    completion = response.json()
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == "Done reading."


def test_keep_alive_connection_serves_consecutive_streams(start_mock):
    mock = start_mock()
    with requests.Session() as session:
        texts = [_text(_events(_post(mock, _body(n), session=session))) for n in (0, 1)]
    assert texts == ["Reading a file.", "Done reading."]


def test_models_and_unknown_routes(start_mock):
    mock = start_mock()
    models = requests.get(f"{mock.url}/models", timeout=WAIT)
    assert models.json() == {"object": "list", "data": [{"id": "mock-model", "object": "model"}]}
    assert requests.get(f"{mock.url}/nope", timeout=WAIT).status_code == 404
    bad = requests.post(f"{mock.url}/chat/completions", data=b"{not json", timeout=WAIT)
    assert bad.status_code == 400
    assert [(e.kind, e.status) for e in mock.journal.entries()] == [
        ("models", 200),
        ("other", 404),
        ("other", 400),
    ]


def test_journal_records_body_and_headers_and_waits(start_mock):
    mock = start_mock()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: _events(_post(mock, _body(1))))
        entries = mock.journal.wait_for(1, timeout=WAIT)
    entry = entries[0]
    assert entry.body == _body(1)
    assert entry.headers["Content-Type"] == "application/json"
    assert mock.journal.wait_for(lambda es: es[0].status == 200, timeout=WAIT) == entries
    with pytest.raises(TimeoutError):
        mock.journal.wait_for(2, timeout=0.05)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::1", "example.com"])
def test_non_loopback_host_is_refused(host):
    with pytest.raises(ValueError, match="loopback only"):
        MockLLM(SCRIPT, host=host)


def test_localhost_and_other_loopback_addresses_are_accepted(start_mock):
    assert start_mock(host="localhost").url.startswith("http://127.0.0.1:")
    assert start_mock(host="127.0.0.2").url.startswith("http://127.0.0.2:")


def test_mock_starts_once_and_stops_idempotently():
    mock = MockLLM(SCRIPT)
    with mock, pytest.raises(RuntimeError, match="starts once"):
        mock.start()
    url = mock.url
    mock.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{url}/models", timeout=WAIT)


def test_opencode_provider_config_points_at_the_mock():
    config = opencode_provider_config("http://127.0.0.1:1234/v1")
    provider = config["provider"]["test"]
    assert provider["npm"] == "@ai-sdk/openai-compatible"
    assert provider["options"]["baseURL"] == "http://127.0.0.1:1234/v1"
    assert provider["models"]["mock-model"]["limit"] == {"context": 100000, "output": 4096}
    assert (config["model"], config["small_model"]) == ("test/mock-model", "test/mock-model")
    assert (config["autoupdate"], config["share"]) == (False, "disabled")


# --- the CLI as a subprocess ------------------------------------------------------------------


def _cli(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "mock", *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def script_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(SCRIPT))
    return path


def test_cli_prints_the_url_serves_and_exits_zero_on_sigterm(script_file):
    process = _cli(str(script_file), "--429-after", "1")
    try:
        line = process.stdout.readline()
        assert line.startswith("mock LLM listening on http://127.0.0.1:")
        url = line.split("listening on ")[1].strip()
        assert url.endswith("/v1")
        assert requests.get(f"{url}/models", timeout=WAIT).json()["data"][0]["id"] == "mock-model"
        chat = f"{url}/chat/completions"
        assert requests.post(chat, json=_body(), timeout=WAIT).status_code == 200
        assert requests.post(chat, json=_body(), timeout=WAIT).status_code == 429
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT) == 0
        assert process.stdout.read() == ""
    finally:
        process.kill()
        process.wait(timeout=WAIT)
        process.stdout.close()
        process.stderr.close()


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        (
            {
                "turns": [
                    {"text": "a"},
                    {"text": "b"},
                    {"tool_calls": [{"name": "r", "arguments": 5}]},
                ]
            },
            (),
            "turns[2].tool_calls[0].arguments: expected an object or a JSON string, got 5",
        ),
        (SCRIPT, ("--host", "0.0.0.0"), "refusing to listen on '0.0.0.0'"),
        (SCRIPT, ("--429-after", "-1"), "argument --429-after: expected an integer >= 0, got '-1'"),
    ],
)
def test_cli_usage_errors_exit_64_with_one_line(tmp_path, content, args, expected):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(content))
    process = _cli(str(path), *args)
    stdout, stderr = process.communicate(timeout=WAIT * 2)
    assert process.returncode == 64
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("mock: ")
    assert expected in lines[0]
    if not args:
        assert lines[0].startswith(f"mock: {path}: ")


def test_rescript_serves_the_new_script_from_the_next_request(start_mock):
    mock = start_mock({"turns": [{"text": "old"}]})
    first = _events(_post(mock, _body()))
    mock.rescript({"turns": [{"text": ["new"]}]})
    second = _events(_post(mock, _body()))
    assert any('"old"' in event for event in first)
    assert any('"new"' in event for event in second)
    assert not any('"old"' in event for event in second)


def test_reset_serves_a_new_script_as_a_fresh_mock_with_a_new_journal(start_mock):
    fault = {"kind": "429", "retry_after": 0}
    mock = start_mock([{"text": "old", "faults": [fault]}])
    assert _post(mock, _body()).status_code == 429  # attempt 1 of turn 0 used
    old = mock.journal
    journal = mock.reset([{"text": "new", "faults": [fault]}])
    assert journal is mock.journal is not old
    assert _post(mock, _body()).status_code == 429  # attempt 1 again: the counters restarted
    assert _text(_events(_post(mock, _body()))) == "new"
    assert [entry.attempt for entry in journal.turns()] == [1, 2]
    assert len(old.turns()) == 1


def test_tools_comparing_themselves_run_opencode_offline_as_the_runner_does():
    from actors.process import OFFLINE_ENV as RUNNER_FLAGS
    from mock.env import OFFLINE_ENV as MOCK_FLAGS

    assert MOCK_FLAGS == RUNNER_FLAGS


def test_a_fault_sends_retry_after_ms_and_rate_limit_headers(start_mock):
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "300ms"}
    fault = {"kind": "429", "retry_after_ms": 300, "headers": headers}
    mock = start_mock([{"text": "Later.", "faults": [fault]}])
    refused = _post(mock, _body())
    assert refused.status_code == 429
    assert refused.headers["retry-after-ms"] == "300"
    assert "Retry-After" not in refused.headers
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "300ms"


def test_a_strict_script_answers_400_past_its_last_turn(start_mock):
    mock = start_mock({"strict": True, "turns": [{"text": "Only one."}]})
    assert _text(_events(_post(mock, _body()))) == "Only one."
    second = _body()
    second["messages"].append({"role": "assistant", "content": "Only one."})
    second["messages"].append({"role": "user", "content": "More?"})
    refused = _post(mock, second)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "mock (strict): no turn 2 in the script, it has 1"


def test_a_turn_keeps_a_providers_pace(start_mock):
    turn = {"text": ["a", "b", "c", "d"], "first_token": 0.3, "tokens_per_second": 20}
    mock = start_mock([turn])
    started = time.monotonic()
    events = _events(_post(mock, _body()))
    elapsed = time.monotonic() - started
    assert _text(events) == "abcd"
    assert elapsed >= 0.3 + 4 * 0.05 - 0.02  # the first token, then a chunk every 1/20 s


@pytest.mark.parametrize(
    ("turn", "problem"),
    [
        ({"text": "a", "tokens_per_second": 0}, "turns[0].tokens_per_second: expected a positive"),
        ({"text": "a", "jitter": 2}, "turns[0].jitter: expected a fraction from 0 to 1, got 2"),
    ],
)
def test_a_pace_out_of_range_is_one_line(turn, problem):
    with pytest.raises(ScriptError, match=re.escape(problem)):
        parse_script({"turns": [turn]}, "s.json")
