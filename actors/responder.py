"""ResponderActor: answers every permission request and question of the session tree.

A headless run has nobody to ask: permissions get the phase policy's answer (reject with a
feedback message by default, so the agent carries on), questions are dismissed. Each answer
is published as a record (a visible warning, a transcript line, an entry in the result).
Replies go out on the actor's worker thread; each request is answered once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger

from actors._supervised import Report, SupervisedActor
from actors._worker import Worker
from actors.opencode_client import OpencodeClient
from core.permissions import PermissionPolicy, decide, describe
from core.tracker import PermissionAsked, QuestionAsked
from messages.pipeline import Tracked
from messages.records import PermissionAnswered, QuestionRejected


class ResponderActor(SupervisedActor):
    """Applies the permission policy to requests found in `Tracked` batches."""

    def __init__(
        self,
        *,
        client: OpencodeClient,
        policy: PermissionPolicy,
        publish: Callable[[Any], None],
        report: Report | None = None,
    ) -> None:
        super().__init__(report=report)
        self._client = client
        self._policy = policy
        self._publish = publish
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
        session_id = effect.session_id

        def reply() -> Any:
            return self._client.reply_permission(
                request_id, decision.reply, session_id=session_id, message=decision.message
            )

        def done(_: Any, error: BaseException | None) -> None:
            self._publish(
                PermissionAnswered(
                    session_id=session_id,
                    request_id=request_id,
                    permission=name,
                    patterns=patterns,
                    reply=decision.reply,
                    message=decision.message,
                    error=None if error is None else str(error),
                )
            )

        self._worker.submit(reply, done)

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

        self._worker.submit(lambda: self._client.reject_question(request_id), done)
        logger.debug("rejecting question {}", request_id)
