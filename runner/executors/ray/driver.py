"""The Ray executor: `run_phases(..., executor="ray")` and `--executor ray`.

Theory of operation. The driver (this process) joins a Ray cluster (`address`) or starts a
one-node Ray on loopback, and starts one `NodeRunner` actor (runner.executors.ray.node) on every
alive node (runner.executors.ray.cluster). The actor claims the node's whole `runner_phase`
amount, or on a node without that resource as many of its CPUs as it has slots (one a CPU, or
`slots_per_node`), which caps the phases the node runs at once (and keeps another driver's
phases off it). Each phase goes to the least busy node with a free slot;
the node runs it with the same supervisor as the local executor and streams back chunks
(terminal text, transcript lines, and last the result) that the driver shows and writes: every
transcript and result JSON is written here. A node that dies (or says nothing, not even a
heartbeat, for `SILENT` seconds) is lost: the phase is cancelled there if the node still
listens, its part of the transcript is set aside, and the phase runs again on another node,
`reruns` times at most. An error of the node's own (or the driver's) fails that phase alone.
Cancelling the batch (Ctrl-C) cancels every phase on its node; phases not yet started end
`interrupted` at once. At the end every node stops its servers, within a timeout. Phase
directories (and this checkout) must be at the same paths on every node."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors.renderer import MODES
from core.errors import RunnerError
from core.ndjson import dumps_line
from runner._logs import logger
from runner.batch import board_for
from runner.executors.ray import cluster as ray_cluster
from runner.executors.ray.cluster import import_ray, prepare
from runner.executors.ray.remote import (
    Node,
    NodeSlots,
    TranscriptFile,
    settle,
    verdict_line,
    warm,
    without_node,
)
from runner.phase import PhaseSpec
from runner.supervisor.result import PhaseResult, write_result

__all__ = ["RayExecutor", "import_ray", "prepare"]


def _shown(row: Any, result: PhaseResult) -> PhaseResult:
    """The live table's row ends with the phase's verdict."""
    if row is not None:
        row.finished(result.verdict, int(time.time() * 1000))
    return result


SILENT = 30.0  # seconds without a chunk (nodes send one every 5 s at least): the node is lost
BACKPRESSURE = 16  # chunks a node may have in flight before its phase waits for the driver


class NodeLostError(RunnerError):
    """The node running a phase died or went silent."""


def _without_verdict(piece: dict[str, Any]) -> list[str]:
    """A chunk's transcript lines, but the verdict line of the last one: the driver writes it
    once it knows where the phase ran (`settle`)."""
    lines = piece["lines"]
    if piece.get("result") is None or not lines:
        return lines
    return lines[:-1] if '"runner.verdict_reached"' in lines[-1][:60] else lines


def _node_lost(
    ctx: _Context, spec: PhaseSpec, transcript: Any, loss: dict[str, Any], then: Node | None
) -> None:
    """A lost node, said where people look: a live line and a transcript record."""
    again = then.id if then is not None else None
    record = {"type": "runner.node_lost", "time": time.time(), "phase": spec.name, **loss}
    transcript.note({**record, "runs_again_on": again})
    if ctx.options.get("mode") == "json":
        ctx.show(dumps_line({**record, "runs_again_on": again}))
        return
    next_run = f"phase {spec.name} runs again on {again}" if again else f"{spec.name} ends here"
    text = f"⚠ node {loss['node']} lost ({loss['reason']}); {next_run}"
    if ctx.board is not None:
        from rich.text import Text

        ctx.board.print(Text(text, style="bold yellow"))
    else:
        ctx.show(text + "\n")


@dataclass(frozen=True, slots=True)
class _Remote:
    """A phase running on a node, as the batch cancels it."""

    actor: Any
    run_id: str

    def cancel(self, reason: str, exit_code: int = 130) -> None:
        with contextlib.suppress(Exception):  # a node already gone has nothing to cancel
            self.actor.cancel.remote(self.run_id, reason, exit_code)


@dataclass(frozen=True, slots=True)
class _Context:
    ray: Any
    slots: NodeSlots
    batch: Any
    options: Mapping[str, Any]
    parallel: int
    lock: threading.Lock
    board: Any = None  # rich, on a terminal, phases side by side: the live table (local's)

    def show(self, text: str) -> None:
        out = self.options.get("out")
        if text and out is not None:
            with self.lock:
                out.write(text)
                out.flush()

    def view(self, spec: PhaseSpec) -> dict[str, Any]:
        mode = "json" if self.options.get("mode") == "json" else "plain"
        if self.board is not None:  # the node fills a row of it (actors.live.BoardRelay)
            return {"mode": "rich", "prefix": spec.name, "board": True}
        return {"mode": mode, "prefix": spec.name if self.parallel > 1 else None}

    def news(self, row: Any, piece: dict[str, Any]) -> None:
        """A chunk's row of the live table, and the lines it printed above it."""
        from rich.text import Text

        relayed = piece.get("board")
        if row is None or relayed is None:
            return
        if relayed["status"] is not None:
            row.restore(relayed["status"], int(time.time() * 1000))
        for markup in relayed["printed"]:
            self.board.print(Text.from_markup(markup))

    def cancelled(self) -> bool:
        return self.batch.cancelled is not None


@dataclass
class RayExecutor:
    """Runs a batch on a Ray cluster (`address`; None: a one-node Ray on this machine)."""

    address: str | None = None
    reruns: int = 1  # how often a phase whose node was lost runs again elsewhere
    slots_per_node: int | None = None  # a node without `runner_phase`: None, its CPUs

    def run(
        self, specs: list[PhaseSpec], parallel: int, batch: Any, options: Mapping[str, Any]
    ) -> list[PhaseResult]:
        """Run every phase; one result each, in order."""
        if options.get("on_event") is not None or options.get("board") is not None:
            raise ValueError("executor ray: on_event is local only (the live table is its own)")
        if options.get("mode", "plain") not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {options['mode']!r}")
        prepare(specs, self.address)
        ray = import_ray(self.address)
        board = board_for(dict(options), parallel, len(specs))
        ctx = _Context(ray, NodeSlots([]), batch, options, parallel, threading.Lock(), board)
        ours = False
        try:
            try:
                ours = ray_cluster.connect(ray, self.address, parallel)
                env, firsts = options.get("env") or {}, warm(specs, parallel)
                ctx.slots.nodes[:] = ray_cluster.start_nodes(
                    ray, env, firsts, ctx.cancelled, self.slots_per_node
                )
            except Exception as exc:  # every phase ends with the reason, its files written
                why = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                logger.error("ray: {}", why)
                return [self._one(ctx, spec, f"executor ray: {why}") for spec in specs]
            return batch.each(lambda spec: self._one(ctx, spec), specs, parallel)
        finally:
            if board is not None:  # the table stays as the batch's summary
                board.stop()
            ray_cluster.stop_nodes(ray, ctx.slots.nodes, quick=batch.cancelled is not None)
            if ours:
                ray.shutdown()

    def _one(self, ctx: _Context, spec: PhaseSpec, unrun: str | None = None) -> PhaseResult:
        """One phase to its result, whatever goes wrong (its files written if they can be)."""
        lost: list[dict[str, Any]] = []
        transcript = TranscriptFile(spec.output.transcript)
        row = ctx.board.row(spec.name) if ctx.board is not None else None
        try:
            if unrun is not None:
                end = ("interrupted", unrun, ctx.batch.exit_code) if ctx.cancelled() else None
                ended = without_node(spec, end or ("failed", unrun, 1), lost, transcript)
                return _shown(row, ended)
            return _shown(row, self._attempts(ctx, spec, transcript, lost, row))
        except Exception as exc:  # a bug, or a file that cannot be written: this phase fails
            logger.exception("phase {} failed on the driver", spec.name)
            reason = f"internal error: {exc}"
            try:
                return without_node(spec, ("failed", reason, 1), lost, transcript)
            except OSError:
                return PhaseResult(phase=spec.name, verdict="failed", reason=reason, exit_code=1)
        finally:
            transcript.close()

    def _attempts(
        self,
        ctx: _Context,
        spec: PhaseSpec,
        transcript: TranscriptFile,
        lost: list[dict],
        row: Any,
    ) -> PhaseResult:
        """Run the phase on a node, and again on another each time a node is lost (said live and
        in the transcript, after the next run's header)."""
        while True:
            node = ctx.slots.acquire(frozenset(e["node"] for e in lost), ctx.cancelled)
            if lost:
                _node_lost(ctx, spec, transcript, lost[-1], node if not ctx.cancelled() else None)
            if ctx.cancelled():
                if node is not None:
                    ctx.slots.release(node)
                end = ("interrupted", ctx.batch.cancelled, ctx.batch.exit_code)
                return without_node(spec, end, lost, transcript)
            if node is None:
                why = "; ".join(entry["reason"] for entry in lost) or "no node to run it on"
                return without_node(spec, ("failed", why, 1), lost, transcript)
            try:
                result = self._on(ctx, node, spec, (transcript, row))
            except NodeLostError as exc:
                ctx.slots.lose(node, str(exc))
                moved = transcript.set_aside()
                lost.append({"node": node.id, "reason": str(exc), "transcript": moved})
                logger.warning("phase {}: {} ({} run(s) so far)", spec.name, exc, len(lost))
                if len(lost) > self.reruns and not ctx.cancelled():
                    _node_lost(ctx, spec, transcript, lost[-1], None)
                    return without_node(spec, ("failed", str(exc), 1), lost, transcript)
                continue
            finally:
                ctx.slots.release(node)
            final = settle(result, spec, node, lost)
            transcript.write([verdict_line(final)])  # held back: it carries the executor's facts
            write_result(final)
            return final

    def _on(
        self, ctx: _Context, node: Node, spec: PhaseSpec, sinks: tuple[TranscriptFile, Any]
    ) -> PhaseResult:
        """Run the phase on `node`, writing what it streams back; `NodeLostError` if it dies
        (the phase cancelled there, in case the node still listens)."""
        ray, remote = ctx.ray, _Remote(node.handle, f"{spec.name}-{uuid.uuid4().hex[:8]}")
        ctx.batch.add(remote)
        method = node.handle.run.options(_generator_backpressure_num_objects=BACKPRESSURE)
        stream = method.remote(remote.run_id, spec, ctx.view(spec))
        sinks[0].write([])  # the transcript exists from the start, as with the local executor
        try:
            return self._read(ctx, node, spec, stream, sinks)
        except NodeLostError:
            remote.cancel("its node was taken as lost", 1)
            with contextlib.suppress(Exception):
                ray.cancel(stream)
            raise
        finally:
            ctx.batch.discard(remote)

    def _read(
        self, ctx: _Context, node: Node, spec: PhaseSpec, stream: Any, sinks: tuple[Any, Any]
    ) -> PhaseResult:
        """The node's chunks up to the last one, which carries the result."""
        ray, (transcript, row) = ctx.ray, sinks
        try:
            while True:
                ready, _ = ray.wait([stream], timeout=SILENT)
                if not ready:
                    raise NodeLostError(f"node {node.id} said nothing for {SILENT:.0f}s")
                piece = ray.get(next(stream), timeout=SILENT)
                transcript.write(_without_verdict(piece))
                ctx.show(piece["out"])
                ctx.news(row, piece)
                if "error" in piece:  # the node could not run it: that phase fails, no rerun
                    return PhaseResult(
                        phase=spec.name, verdict="failed", reason=piece["error"], exit_code=1
                    )
                if piece.get("result") is not None:
                    return piece["result"]
        except StopIteration:
            raise NodeLostError(f"node {node.id} ended the phase without a result") from None
        except ray_cluster.lost_errors(ray) as exc:
            raise NodeLostError(f"node {node.id} was lost ({type(exc).__name__})") from exc
        except ray.exceptions.RayTaskError as exc:
            why = str(exc).strip().splitlines()[-1]
            return PhaseResult(phase=spec.name, verdict="failed", reason=why, exit_code=1)
