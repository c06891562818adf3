"""A daemon thread that runs an actor's blocking calls in order and reports the outcome."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pykka

from actors.logs import logger

_STOP = object()


class Worker:
    """Runs `call()` off the actor's thread, then hands `(result, error)` to `done`."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(
        self, call: Callable[[], Any], done: Callable[[Any, BaseException | None], None]
    ) -> None:
        """Queue a blocking call; `done` runs on the worker thread (it should only `tell`)."""
        self._jobs.put((call, done))

    def close(self) -> None:
        """Finish queued jobs' current one and end the thread (it is a daemon anyway)."""
        self._jobs.put(_STOP)

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not _STOP:
            call, done = job
            try:
                result = call()
                error = None
            except Exception as exc:
                result = None
                error = exc
            try:
                done(result, error)
            except pykka.ActorDeadError:
                pass
            except Exception:
                logger.exception("worker callback failed")


def tell_quietly(ref: pykka.ActorRef, message: Any) -> None:
    """Tell an actor that may already have stopped."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)


def start_ticker(
    ref: pykka.ActorRef, message: Any, period: float, stop: threading.Event
) -> threading.Thread:
    """Tell `message` to the actor every `period` seconds until `stop` is set or it dies."""

    def tick() -> None:
        while not stop.wait(period):
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                return

    thread = threading.Thread(target=tick, name=f"ticker-{type(message).__name__}", daemon=True)
    thread.start()
    return thread


def stop_actors(refs: Iterable[pykka.ActorRef], timeout: float) -> None:
    """Stop actors one by one (in the order given), each within `timeout`; never raises.

    Producers blocked on a full inbox are released first, so no stop waits behind them."""
    refs = list(refs)
    for ref in refs:
        close = getattr(ref.actor_inbox, "close", None)  # pykka's own inboxes have none
        if close is not None:
            close()
    for ref in refs:
        stop_actor(ref, timeout)


def stop_actor(ref: pykka.ActorRef, timeout: float) -> bool:
    """Stop one actor within `timeout`, logging the outcome; True if it stopped."""
    name = ref.actor_class.__name__
    started = time.monotonic()
    try:
        stopped = ref.stop(timeout=timeout)
    except pykka.Timeout:
        logger.warning("{} did not stop within {:g}s", name, timeout)
        return False
    except Exception:
        logger.exception("{} failed while stopping", name)
        return False
    elapsed = time.monotonic() - started
    logger.debug("{} {} ({:.3f}s)", name, "stopped" if stopped else "was already gone", elapsed)
    return True
