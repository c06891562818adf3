"""OpencodeClient: request shapes and error mapping, through a fake transport (no sockets)."""

from __future__ import annotations

import json

import pytest
import requests
from requests.adapters import BaseAdapter

from actors.opencode_client import OpencodeClient, split_model
from core.errors import RequestTimeoutError, ServerUnreachableError, UpstreamHTTPError
from core.protocol import WireV2

pytestmark = pytest.mark.timeout(10)


class FakeAdapter(BaseAdapter):
    """Answers from a table of (method, path) -> (status, body, headers); records requests."""

    def __init__(self, routes):
        super().__init__()
        self.routes = routes
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):
        self.sent.append(request)
        path = request.path_url.split("?")[0]
        answer = self.routes.get((request.method, path))
        if isinstance(answer, Exception):
            raise answer
        if answer is None:
            answer = (404, {"name": "NotFound"}, {})
        status, body, headers = answer
        response = requests.Response()
        response.status_code = status
        response._content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        response.headers.update(headers)
        response.request = request
        response.url = request.url
        return response

    def close(self):
        pass


def make_client(routes, directory="/work/proj"):
    adapter = FakeAdapter(routes)
    session = requests.Session()
    session.mount("http://", adapter)
    client = OpencodeClient(
        "http://127.0.0.1:4096/", password="pw", directory=directory, session=session
    )
    return client, adapter


def test_every_call_sends_basic_auth_and_the_directory_scope():
    client, adapter = make_client({("GET", "/session/status"): (200, {}, {})})
    assert client.status() == {}
    sent = adapter.sent[0]
    assert sent.headers["Authorization"].startswith("Basic ")
    assert "directory=%2Fwork%2Fproj" in sent.url


def test_health_is_not_directory_scoped():
    client, adapter = make_client(
        {("GET", "/global/health"): (200, {"healthy": True, "version": "1.18.33"}, {})}
    )
    assert client.version() == "1.18.33"
    assert "directory" not in adapter.sent[0].url


def test_create_session_sends_title_agent_model_and_rules():
    client, adapter = make_client({("POST", "/session"): (200, {"id": "ses_1"}, {})})
    rules = [{"permission": "question", "action": "deny", "pattern": "*"}]
    session = client.create_session(
        title="phase", agent="build", model="test/mock-model", permission=rules
    )
    assert session == {"id": "ses_1"}
    body = json.loads(adapter.sent[0].body)
    assert body == {
        "title": "phase",
        "agent": "build",
        "model": {"providerID": "test", "id": "mock-model"},
        "permission": rules,
    }


def test_prompt_async_sends_parts_and_model_with_model_id():
    client, adapter = make_client({("POST", "/session/ses_1/prompt_async"): (204, "", {})})
    assert client.prompt_async("ses_1", "Say hi", model="test/mock-model", agent="plan") is None
    body = json.loads(adapter.sent[0].body)
    assert body == {
        "parts": [{"type": "text", "text": "Say hi"}],
        "agent": "plan",
        "model": {"providerID": "test", "modelID": "mock-model"},
    }


def test_messages_passes_limit():
    client, adapter = make_client({("GET", "/session/ses_1/message"): (200, [], {})})
    assert client.messages("ses_1", limit=5) == []
    assert "limit=5" in adapter.sent[0].url


def test_http_error_carries_status_body_name_and_retry_after():
    body = {"name": "NotFoundError", "data": {"message": "Session not found: ses_x"}}
    client, _ = make_client({("GET", "/session/ses_x"): (404, body, {"Retry-After": "3"})})
    with pytest.raises(UpstreamHTTPError) as caught:
        client.get_session("ses_x")
    error = caught.value
    assert error.status == 404
    assert error.error_name == "NotFoundError"
    assert error.retry_after == 3.0
    assert json.loads(error.body) == body
    assert str(error) == "GET /session/ses_x -> HTTP 404: Session not found: ses_x"


def test_html_error_body_is_summarised_on_one_line():
    client, _ = make_client(
        {("POST", "/session/ses_1/abort"): (500, "<h1>oops</h1>\n<p>x</p>", {})}
    )
    with pytest.raises(UpstreamHTTPError, match=r"HTTP 500: <h1>oops</h1> <p>x</p>$"):
        client.abort("ses_1")


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (requests.ConnectTimeout("slow"), RequestTimeoutError),
        (requests.ReadTimeout("slow"), RequestTimeoutError),
        (requests.ConnectionError("refused"), ServerUnreachableError),
    ],
)
def test_transport_failures_map_to_runner_errors(failure, expected):
    client, _ = make_client({("GET", "/session/status"): failure})
    with pytest.raises(expected, match="GET /session/status"):
        client.status()


def test_password_is_not_in_repr():
    client, _ = make_client({})
    assert "pw" not in repr(client).replace("proj", "")


def test_permission_reply_uses_the_new_route():
    client, adapter = make_client({("POST", "/permission/per_1/reply"): (200, True, {})})
    assert client.reply_permission("per_1", "reject", session_id="ses_1", message="no") is True
    assert json.loads(adapter.sent[0].body) == {"reply": "reject", "message": "no"}


def test_permission_reply_falls_back_to_the_old_route_when_the_new_one_is_missing():
    client, adapter = make_client(
        {
            ("POST", "/permission/per_1/reply"): (404, "Not Found", {}),
            ("POST", "/session/ses_1/permissions/per_1"): (200, True, {}),
        }
    )
    assert client.reply_permission("per_1", "once", session_id="ses_1") is True
    assert json.loads(adapter.sent[1].body) == {"response": "once"}


def test_permission_already_answered_is_not_retried_on_the_old_route():
    body = {"name": "PermissionNotFoundError", "data": {"message": "gone"}}
    client, adapter = make_client({("POST", "/permission/per_1/reply"): (404, body, {})})
    with pytest.raises(UpstreamHTTPError) as caught:
        client.reply_permission("per_1", "reject", session_id="ses_1")
    assert caught.value.error_name == "PermissionNotFoundError"
    assert len(adapter.sent) == 1


def test_question_reject_and_dispose():
    client, adapter = make_client(
        {
            ("POST", "/question/que_1/reject"): (200, True, {}),
            ("POST", "/instance/dispose"): (200, True, {}),
        }
    )
    assert client.reject_question("que_1") is True
    assert client.dispose_instance() is True
    assert [r.path_url.split("?")[0] for r in adapter.sent] == [
        "/question/que_1/reject",
        "/instance/dispose",
    ]


@pytest.mark.parametrize(
    ("model", "expected"),
    [("test/mock-model", ("test", "mock-model")), ("openrouter/a/b", ("openrouter", "a/b"))],
)
def test_split_model(model, expected):
    assert split_model(model) == expected


@pytest.mark.parametrize("model", ["mock-model", "/x", "x/", ""])
def test_split_model_rejects_malformed(model):
    with pytest.raises(ValueError, match="provider/model"):
        split_model(model)


def test_a_line_whose_tools_are_fixed_spends_no_request_on_them():
    client, adapter = make_client({("GET", "/experimental/tool/ids"): (200, ["read", "mcp_x"], {})})
    assert client.tool_ids() == ["read", "mcp_x"]  # 1.x lists them, MCP's too
    assert len(adapter.sent) == 1
    client.wire = WireV2()
    assert client.tool_ids() == list(WireV2.fixed_tools)
    assert len(adapter.sent) == 1  # 2.x lists none: nothing was asked of a cold server
