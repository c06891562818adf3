"""TerminationActor: drives a phase's prompts and decides when it is over.

A thin shell around the pure `Policy`: it feeds it tracked effects, permission answers and
`Tick`s (every 0.25 s, so an interrupt's 0.5 s grace ends on time; tests pass `tick=None` and
tell them), and performs its effects on worker threads: a prompt (baseline first; it carries
its own message and part id, so a timed-out POST, or a prompt whose turn never started, is sent
again without being stored twice), the check that its turn started, the `done` checks, the abort.
Its decision goes out as `Concluded`, which the supervisor makes the phase's verdict.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from actors._supervised import Report, SupervisedActor
from actors.checks import ArtifactBaseline, CommandGuard, DoneCriteria, repairable, run_checks
from actors.logs import logger
from actors.opencode_client import OpencodeClient
from actors.worker import Worker, start_ticker, tell_quietly
from core.errors import RequestTimeoutError, UpstreamHTTPError
from core.ids import AscendingIds
from core.termination import Abort, CheckPrompt, Conclude, Policy, Resend, RunChecks, SendPrompt
from messages.control import Begin, Concluded, EndPhase, Tick
from messages.pipeline import SetBaseline, Tracked
from messages.records import AttemptStarted, Notice, PermissionAnswered, PromptSent


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptOptions:
    """What every prompt of the phase carries besides its text."""

    model: str | None = None
    agent: str | None = None
    variant: str | None = None
    format: dict[str, Any] | None = None  # `output_schema`: {"type": "json_schema", "schema"}


@dataclass(frozen=True, slots=True)
class _Outcome:
    kind: str  # "baseline", "sent", "checked", "aborted", or one of those + "_failed"
    value: Any = None


class TerminationActor(SupervisedActor):
    """Owns the policy of one phase and the IO its decisions need."""

    def __init__(
        self,
        *,
        policy: Policy,
        client: OpencodeClient,
        options: PromptOptions,
        criteria: DoneCriteria,
        baseline: ArtifactBaseline,
        directory: Path,
        publish: Callable[[Any], None],
        clock: Callable[[], float] = time.monotonic,
        tick: float | None = 0.25,
        report: Report | None = None,
    ) -> None:
        super().__init__(report=report)
        self._policy = policy
        self._client = client
        self._options = options
        self._criteria = criteria
        self._artifacts = baseline
        self._directory = directory
        self._publish = publish
        self._clock = clock
        self._tick = tick
        self._worker = Worker("termination")
        self._aborter = Worker("termination-abort")  # never queued behind a long check
        self._stopped = threading.Event()
        self._commands = CommandGuard()
        self._ids = AscendingIds(clock_ms=lambda: time.time_ns() // 1_000_000)
        self._sent: dict[int, tuple[str, dict[str, Any]]] = {}  # attempt -> text, prompt options

    def on_start(self) -> None:
        """Start the ticker that drives timeouts."""
        if self._tick is not None:
            start_ticker(self.actor_ref, Tick(), self._tick, self._stopped)

    def on_stop(self) -> None:
        """End the helper threads."""
        self._release()
        super().on_stop()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """A crash must not leave a `done.command` running either."""
        self._release()
        super().on_failure(exception_type, exception_value, traceback)

    def _release(self) -> None:
        self._stopped.set()
        self._commands.kill()
        self._worker.close()
        self._aborter.close()

    def on_receive(self, message: Any) -> None:
        """Feed the policy; perform what it decides."""
        now = self._clock()
        match message:
            case Tracked():
                batch = Tracked.joined(message, self.actor_inbox.take_more(Tracked, 512))
                self._perform(self._policy.observe(batch.effects, now))
            case Begin():
                self._perform(self._policy.start(now))
            case EndPhase(verdict=verdict, reason=reason):
                self._perform(self._policy.external_failure(verdict, reason, now))
            case Tick():
                self._perform(self._policy.tick(now))
            case PermissionAnswered() as answer:
                # Told by the responder before it sends the reply the session waits for, so before
                # any idle that follows (it must still pass reader, tracker, sync): it counts first.
                self._policy.permission_answered(
                    request_id=answer.request_id,
                    reply=answer.reply,
                    permission=answer.permission,
                    patterns=answer.patterns,
                    session_id=answer.session_id,
                )
            case _Outcome():
                self._on_outcome(message, now)
            case _:
                pass  # the pipeline's other records concern the renderer and the transcript

    def _perform(self, effects: list[Any]) -> None:
        for effect in effects:
            match effect:
                case SendPrompt(number=number, kind=kind, text=text, reason=reason):
                    self._publish(
                        AttemptStarted(number=number, kind=kind, prompt=text, reason=reason)
                    )
                    self._submit(lambda e=effect: self._send(e), "sent")
                case CheckPrompt():
                    baseline = self._policy.attempts[-1].baseline  # read here, on our thread
                    self._submit(lambda b=baseline: self._turn_started(b), "prompt_checked")
                case Resend(number=number):
                    text = "the prompt was accepted but no turn started; sending it again"
                    self._publish(Notice(level="warning", text=text))
                    self._submit(lambda n=number: self._post(*self._sent[n]), "resent")
                case RunChecks(structured=structured):
                    self._submit(lambda s=structured: self._check(s), "checked")
                case Abort(reason=reason):
                    self._publish(Notice(level="warning", text=f"aborting the session: {reason}"))
                    self._commands.kill()  # a check still running is moot now
                    self._submit(self._abort_session, "aborted", self._aborter)
                case Conclude(verdict=verdict, reason=reason, exit_code=code):
                    summary = self.summary()
                    self._publish(
                        Concluded(verdict=verdict, reason=reason, exit_code=code, summary=summary)
                    )

    def _on_outcome(self, outcome: _Outcome, now: float) -> None:
        match outcome.kind:
            case "baseline":
                self._perform(self._policy.baseline_taken(outcome.value, now))
            case "sent":
                attempt = self._policy.attempts[-1]
                logger.debug("prompt {} ({}) accepted", attempt.number, attempt.kind)
                self._publish(PromptSent(number=attempt.number, baseline=attempt.baseline))
            case "sent_failed":
                self._perform(self._policy.prompt_failed(str(outcome.value), now))
            case "resent_failed":  # the first one was accepted: the stall timeout decides
                logger.warning("could not send the prompt again: {}", outcome.value)
            case "prompt_checked":
                self._perform(self._policy.prompt_checked(outcome.value, now))
            case "prompt_checked_failed":  # say nothing: the stall timeout still rules
                logger.warning("could not check that the prompt started: {}", outcome.value)
            case "checked":
                failures, fixable = outcome.value
                self._perform(self._policy.checks_done(failures, repairable=fixable, now=now))
            case "checked_failed":
                failure = (("command", f"the done checks could not run: {outcome.value}"),)
                self._perform(self._policy.checks_done(failure, repairable=False, now=now))
            case "aborted":
                self._perform(self._policy.abort_done(outcome.value is not False, now))
            case "aborted_failed":
                logger.warning("abort failed: {}", outcome.value)

    def _submit(self, call: Callable[[], Any], kind: str, worker: Worker | None = None) -> None:
        def done(result: Any, error: BaseException | None) -> None:
            outcome = _Outcome(kind, result) if error is None else _Outcome(f"{kind}_failed", error)
            tell_quietly(self.actor_ref, outcome)

        (worker or self._worker).submit(call, done)

    # -- on the worker thread --------------------------------------------------------------------

    def _send(self, effect: SendPrompt) -> None:
        session_id = self._policy.session_id
        # the phase created the session: before its first prompt it holds nothing
        latest = [] if effect.kind == "initial" else self._client.messages(session_id, limit=1)
        baseline = latest[-1]["info"]["id"] if latest else None
        self._publish(SetBaseline(message_id=baseline))  # for the sync actor
        tell_quietly(self.actor_ref, _Outcome("baseline", baseline))
        options = asdict(self._options)  # model, agent, variant
        options["messageID"] = self._ids.next("msg", after=baseline)
        options["partID"] = self._ids.next("prt")
        self._sent[effect.number] = (effect.text, options)
        self._post(effect.text, options)

    def _post(self, text: str, options: dict[str, Any]) -> None:
        """POST the prompt; once more after a timeout (its ids make that safe)."""
        try:
            self._client.prompt_async(self._policy.session_id, text, **options)
        except RequestTimeoutError:
            self._client.prompt_async(self._policy.session_id, text, **options)

    def _turn_started(self, baseline: str | None) -> bool:
        """Is the session busy, or has an assistant message come after the prompt?"""
        session_id = self._policy.session_id
        if self._client.status().get(session_id, {}).get("type", "idle") != "idle":
            return True
        try:
            latest = self._client.messages(session_id, limit=1)
        except UpstreamHTTPError as exc:  # the newest is our prompt with its output format
            if exc.unlistable_format:
                return False
            raise
        info = latest[-1]["info"] if latest else {}
        newer = baseline is None or str(info.get("id") or "") > baseline
        return info.get("role") == "assistant" and newer

    def _abort_session(self) -> bool:
        """Abort the root; False only when the server said nothing ran and does not list the
        session as working either."""
        session_id = self._policy.session_id
        if self._client.abort(session_id):
            return True
        return self._client.status().get(session_id, {}).get("type", "idle") != "idle"

    def _check(self, structured: Any) -> tuple[tuple[tuple[str, str], ...], bool]:
        criteria = self._criteria
        artifacts = self._artifacts
        guard = self._commands
        report = run_checks(self._directory, criteria, artifacts, guard, structured)
        failures = tuple((failure.kind, failure.detail) for failure in report.failures)
        return failures, repairable(report)

    def summary(self) -> dict[str, Any]:
        """The attempts so far and the rejected permissions (for the result, whatever ends it)."""
        return self._policy.summary()
