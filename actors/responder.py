"""ResponderActor: answers every permission request and question of the session tree.

A headless run has nobody to ask: permissions get the phase policy's answer (reject with a
feedback message by default, so the agent carries on), questions are dismissed. This actor is
the one place a permission is decided. The decision is published at once, before the reply is
sent: the termination policy counts a rejection from that record, and since the session can
only go idle after the server has our reply, the record always reaches it before that idle.
Replies go out on the actor's worker thread, each request once, retried with tenacity on
transient errors (server unreachable, timeout, 5xx); a reply that still fails is published
again with its error (a visible error line, a transcript record).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import tenacity

from actors._supervised import Report, SupervisedActor
from actors.logs import logger
from actors.opencode_client import OpencodeClient
from actors.worker import Worker
from core.errors import RequestTimeoutError, ServerUnreachableError, UpstreamHTTPError
from core.permissions import PermissionPolicy, decide, describe
from core.tracker import PermissionAsked, QuestionAsked
from messages.pipeline import Tracked
from messages.records import PermissionAnswered, QuestionRejected

REPLY_ATTEMPTS = 4


class ResponderActor(SupervisedActor):
    """Applies the permission policy to requests found in `Tracked` batches."""

    def __init__(
        self,
        *,
        client: OpencodeClient,
        policy: PermissionPolicy,
        publish: Callable[[Any], None],
        retry_wait: tenacity.wait.wait_base | None = None,
        report: Report | None = None,
    ) -> None:
        super().__init__(report=report)
        self._client = client
        self._policy = policy
        self._publish = publish
        self._wait = retry_wait or tenacity.wait_exponential(multiplier=0.25, max=2.0)
        self._answered: set[str] = set()
        self._worker = Worker("responder")

    def on_receive(self, message: Any) -> None:
        """Look for requests in each batch; ignore everything else the pipeline sends."""
        if not isinstance(message, Tracked):
            return
        for effect in message.effects:
            match effect:
                case PermissionAsked():
                    self._permission(effect)
                case QuestionAsked():
                    self._question(effect)

    def on_stop(self) -> None:
        """End the worker thread."""
        self._worker.close()
        super().on_stop()

    def _first_time(self, request_id: str) -> bool:
        if not request_id or request_id in self._answered:
            return False
        self._answered.add(request_id)
        return True

    def _permission(self, effect: PermissionAsked) -> None:
        request_id = str(effect.request.get("id", ""))
        if not self._first_time(request_id):
            return
        decision = decide(self._policy, effect.request)
        name, patterns = describe(effect.request)
        answer = PermissionAnswered(
            session_id=effect.session_id,
            request_id=request_id,
            permission=name,
            patterns=patterns,
            reply=decision.reply,
            message=decision.message,
        )
        self._publish(answer)  # before the reply: see the module docstring

        def reply() -> Any:
            return self._client.reply_permission(
                request_id, decision.reply, session_id=effect.session_id, message=decision.message
            )

        def done(_: Any, error: BaseException | None) -> None:
            if error is not None:
                self._publish(_with_error(answer, error))

        self._worker.submit(self._retrying(reply), done)

    def _question(self, effect: QuestionAsked) -> None:
        request_id = str(effect.request.get("id", ""))
        if not self._first_time(request_id):
            return
        questions = tuple(
            str(q.get("question", "")) for q in effect.request.get("questions", ()) or ()
        )
        session_id = effect.session_id

        def done(_: Any, error: BaseException | None) -> None:
            self._publish(
                QuestionRejected(
                    session_id=session_id,
                    request_id=request_id,
                    questions=questions,
                    error=None if error is None else str(error),
                )
            )

        self._worker.submit(
            self._retrying(lambda: self._client.reject_question(request_id, session_id=session_id)),
            done,
        )
        logger.debug("rejecting question {}", request_id)

    def _retrying(self, call: Callable[[], Any]) -> Callable[[], Any]:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_transient),
            stop=tenacity.stop_after_attempt(REPLY_ATTEMPTS),
            wait=self._wait,
            reraise=True,
            before_sleep=lambda state: logger.debug(
                "reply failed ({}); trying again", state.outcome.exception()
            ),
        )
        return lambda: retrying(call)


def _transient(error: BaseException) -> bool:
    """Worth another try: the server did not answer, or failed on its side."""
    if isinstance(error, ServerUnreachableError | RequestTimeoutError):
        return True
    return isinstance(error, UpstreamHTTPError) and (error.status >= 500 or error.status == 429)


def _with_error(answer: PermissionAnswered, error: BaseException) -> PermissionAnswered:
    return replace(answer, error=str(error))
