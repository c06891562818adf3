"""SyncActor: fetches message snapshots for resyncs, off its own thread.

On `RequestSync` it reads `GET /session/{id}/message` for each session of the tree (the root's
messages only after the attempt's baseline, so a resumed attempt never replays history) and,
except after an idle (the root is idle then), `GET /session/status` and the permission
requests still waiting (a break may have lost the event that asked); it publishes one
`SnapshotFetched` (for the tracker). Failures are reported in the reply, never raised: the
tracker must release a held idle either way. Secrets
(the server's password, were a tool to print it) are masked before the snapshot goes anywhere.

opencode 1.18.33 cannot list a page of messages that holds a prompt sent with an output format
(`output_schema`): it answers HTTP 400 ("Expected OutputFormatJsonSchema"). The messages after
that prompt still list, so the root's snapshot is then the largest page that does (a binary
search on `limit`): everything the attempt produced, without its own prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors._supervised import Report, SupervisedActor
from actors.logs import logger
from actors.opencode_client import OpencodeClient
from actors.worker import Worker
from core.errors import RunnerError, UpstreamHTTPError
from core.redact import masked
from messages.pipeline import RequestSync, SetBaseline, SnapshotFetched

# A resync of a long session fetches only the newest messages when they reach back past the
# baseline (they usually do: an attempt adds a handful of messages).
PAGE = 50


class SyncActor(SupervisedActor):
    """Answers sync requests for one root session with snapshots newer than the baseline."""

    def __init__(
        self,
        *,
        client: OpencodeClient,
        root_session_id: str,
        publish: Callable[[Any], None],
        secrets: tuple[str, ...] = (),
        report: Report | None = None,
    ) -> None:
        super().__init__(report=report)
        self._client = client
        self._root = root_session_id
        self._publish = publish
        self._secrets = secrets
        self._baseline: str | None = None
        self._worker = Worker("sync")

    def on_receive(self, message: Any) -> None:
        """Baselines and sync requests."""
        match message:
            case SetBaseline(message_id=message_id):
                self._baseline = message_id
            case RequestSync():
                baseline = self._baseline
                self._worker.submit(
                    lambda: self._fetch(message, baseline),
                    lambda result, error: self._publish(result or self._failed(message, error)),
                )
            case _:
                logger.warning("SyncActor ignored unexpected message {!r}", message)

    def on_stop(self) -> None:
        """End the worker thread."""
        self._worker.close()
        super().on_stop()

    def _fetch(self, request: RequestSync, baseline: str | None) -> SnapshotFetched:
        # After an idle the root is idle: only the other syncs ask the server whether it is.
        status = {} if request.reason == "idle" else self._client.status()
        snapshots = []
        for session_id in request.session_ids:
            if session_id == self._root:
                messages = self._after_baseline(baseline)
            else:
                messages = self._client.messages(session_id)
            snapshots.append((session_id, tuple(masked(messages, self._secrets))))
        root_status = status.get(self._root, {}).get("type", "idle")
        asks = () if request.reason == "idle" else self._pending_asks(request.session_ids)
        return SnapshotFetched(
            reason=request.reason,
            snapshots=tuple(snapshots),
            root_idle=root_status == "idle",
            asks=tuple(masked(asks, self._secrets)),
        )

    def _pending_asks(self, session_ids: tuple[str, ...]) -> list[dict[str, Any]]:
        """Permission requests still waiting: a break may have lost the events that asked."""
        found: dict[str, dict[str, Any]] = {}
        try:
            for session_id in session_ids:
                for ask in self._client.pending_permissions(session_id):
                    found.setdefault(str(ask.get("id")), ask)
        except RunnerError as exc:  # the resync goes on without them
            logger.debug("pending permission requests not listed: {}", exc)
        return list(found.values())

    def _after_baseline(self, baseline: str | None) -> list[dict[str, Any]]:
        """The root's messages after the baseline: the newest page, or all if that is short."""
        if baseline is not None:
            page = self._root_page(PAGE)
            complete = len(page) < PAGE
            reaches_baseline = not newer_than(page[:1], baseline)
            if complete or reaches_baseline:
                return newer_than(page, baseline)
        return newer_than(self._root_page(None), baseline)

    def _root_page(self, limit: int | None) -> list[dict[str, Any]]:
        """The root's newest `limit` messages (all: None), past a prompt that cannot list."""
        try:
            return self._client.messages(self._root, limit=limit)
        except UpstreamHTTPError as exc:
            if not exc.unlistable_format:
                raise
        if limit is None:  # everything: double the page until it fails (or holds all there is)
            size = PAGE
            while (page := self._listable(size)) is not None and len(page) == size:
                size *= 2
            if page is not None:
                return page
            limit = size
        low = 1
        high = limit
        found = []
        while low <= high:  # the largest page that lists
            middle = (low + high) // 2
            page = self._listable(middle)
            if page is None:
                high = middle - 1
            else:
                found = page
                low = middle + 1
        return found

    def _listable(self, limit: int) -> list[dict[str, Any]] | None:
        """The newest `limit` messages of the root, or None when that page cannot list."""
        try:
            return self._client.messages(self._root, limit=limit)
        except UpstreamHTTPError as exc:
            if exc.status != 400:
                raise
            return None

    @staticmethod
    def _failed(request: RequestSync, error: BaseException | None) -> SnapshotFetched:
        if error is not None and not isinstance(error, RunnerError):
            logger.opt(exception=error).error("sync failed unexpectedly")
        return SnapshotFetched(
            reason=request.reason, snapshots=(), root_idle=False, error=str(error)
        )


def newer_than(messages: list[dict[str, Any]], baseline: str | None) -> list[dict[str, Any]]:
    """Messages after the baseline id (opencode's message ids sort by creation time)."""
    if baseline is None:
        return messages
    return [m for m in messages if str(m.get("info", {}).get("id", "")) > baseline]
