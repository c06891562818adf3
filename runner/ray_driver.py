"""The Ray executor: `run_phases(..., executor="ray")` and `--executor ray`.

Theory of operation. The driver (this process) connects to a Ray cluster (`address`) or starts
a one-node Ray on loopback, and starts one `NodeRunner` actor (runner.ray_node) on every alive
node that offers the `runner_phase` resource. The actor claims the node's whole `runner_phase`
amount, which caps the phases the node runs at once (and keeps another driver's phases off
it). Each phase goes to the least busy node with a free slot; the node runs it with the same
supervisor as the local executor and streams back chunks (terminal text, transcript lines,
then the result) that the driver shows and writes: every transcript and result JSON is written
here. A node that dies (or says nothing, not even a heartbeat, for `SILENT` seconds) is lost:
its part of the transcript is set aside and the phase runs again on another node, `reruns`
times at most. Cancelling the batch (Ctrl-C) cancels every phase on its node; phases not yet
started end `interrupted` at once. At the end every node stops its servers, within a timeout.
Phase directories (and this checkout) must be at the same paths on every node.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import RunnerError
from runner._logs import logger
from runner._mock import EmbeddedMock
from runner.phase import PhaseSpec
from runner.remote import Node, NodeSlots, TranscriptFile, settle, warm, without_node
from runner.result import PhaseResult, write_result

RESOURCE = "runner_phase"
SILENT = 30.0  # seconds without a chunk (nodes send one every 5 s at least): the node is lost
NODE_START_TIMEOUT = 60.0
NODE_STOP_TIMEOUT = 40.0
BACKPRESSURE = 16  # chunks a node may have in flight before its phase waits for the driver
ROOT = str(Path(__file__).resolve().parents[1])  # this checkout: the nodes import it from here


class NodeLostError(RunnerError):
    """The node running a phase died or went silent."""


def import_ray(address: str | None) -> Any:
    """`ray`, imported with what the runner needs of it: no usage stats, and a loopback
    cluster kept on 127.0.0.1 (Ray otherwise swaps it for the host's address)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    host = (address or "127.0.0.1").removeprefix("ray://").rsplit(":", 1)[0]
    if host in ("127.0.0.1", "localhost"):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise RunnerError("--executor ray needs Ray: run `make setup-ray`") from None
    return ray


def prepare(specs: list[PhaseSpec], address: str | None) -> EmbeddedMock:
    """What the CLI checks before a Ray batch starts (`PhaseFileError`, `RunnerError`), and
    the driver's mock LLM: none, each node starts its own."""
    from runner.remote import refuse_attached

    refuse_attached(specs)
    import_ray(address)
    return EmbeddedMock([])


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

    def show(self, text: str) -> None:
        out = self.options.get("out")
        if text and out is not None:
            with self.lock:
                out.write(text)
                out.flush()

    def view(self, spec: PhaseSpec) -> dict[str, Any]:
        mode = "json" if self.options.get("mode") == "json" else "plain"
        return {"mode": mode, "prefix": spec.name if self.parallel > 1 else None}


@dataclass
class RayExecutor:
    """Runs a batch on a Ray cluster (`address`; None: a one-node Ray on this machine)."""

    address: str | None = None
    reruns: int = 1  # how often a phase whose node was lost runs again elsewhere

    def run(
        self, specs: list[PhaseSpec], parallel: int, batch: Any, options: Mapping[str, Any]
    ) -> list[PhaseResult]:
        """Run every phase; one result each, in order."""
        if options.get("on_event") is not None or options.get("board") is not None:
            raise ValueError("executor ray: on_event and the live table are local only")
        ray = import_ray(self.address)
        nodes: list[Node] = []
        try:
            try:
                self._connect(ray, parallel)
                firsts = warm(specs, parallel)
                nodes = self._start_nodes(ray, options.get("env") or {}, firsts)
            except Exception as exc:  # every phase fails with the reason, its files written
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                logger.error("ray: {}", why)
                return [_unrun(spec, f"executor ray: {why}") for spec in specs]
            ctx = _Context(ray, NodeSlots(nodes), batch, options, parallel, threading.Lock())
            with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
                try:
                    return list(pool.map(lambda spec: self._one(ctx, spec), specs))
                except BaseException:
                    batch.cancel("interrupted while waiting for the results")
                    raise
        finally:
            _stop_nodes(ray, nodes, quick=batch.cancelled is not None)
            ray.shutdown()

    def _connect(self, ray: Any, parallel: int) -> None:
        env = {"PYTHONPATH": ROOT, "RAY_USAGE_STATS_ENABLED": "0"}
        if os.environ.get("RUNNER_OPENCODE"):
            env["RUNNER_OPENCODE"] = os.environ["RUNNER_OPENCODE"]
        common = {
            "log_to_driver": False,
            "logging_level": logging.WARNING,
            "runtime_env": {"env_vars": env},
        }
        if self.address is not None:
            ray.init(address=self.address, **common)
        else:
            ray.init(
                address="local",
                resources={RESOURCE: parallel},
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                **common,
            )
        logger.info("ray: connected to {}", self.address or "a one-node Ray on loopback")

    def _start_nodes(self, ray: Any, env: Mapping[str, str], firsts: list[PhaseSpec]) -> list[Node]:
        """A `NodeRunner` on every alive node offering `runner_phase` slots, each starting the
        servers of `firsts` (the first phases) at once."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from runner.ray_node import NodeRunner

        offered = [
            (n["NodeID"], int(n.get("Resources", {}).get(RESOURCE, 0)))
            for n in ray.nodes()
            if n.get("Alive")
        ]
        env = {k: v for k, v in env.items() if k != "MOCK_LLM_URL"}  # each node has its own
        actor, nodes = ray.remote(NodeRunner), []
        for node_id, slots in (pair for pair in offered if pair[1] >= 1):
            handle = actor.options(
                num_cpus=0,
                resources={RESOURCE: slots},
                max_concurrency=slots + 4,  # its phases, plus cancel and shutdown calls
                max_restarts=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(node_id, env, firsts)
            nodes.append(Node(node_id, slots, handle))
        return _answering(ray, nodes)

    def _one(self, ctx: _Context, spec: PhaseSpec) -> PhaseResult:
        """One phase to its result: on a node, again on another if the node is lost."""
        lost: list[dict[str, Any]] = []
        transcript = TranscriptFile(spec.output.transcript)
        while True:
            node = ctx.slots.acquire(
                frozenset(entry["node"] for entry in lost), lambda: ctx.batch.cancelled is not None
            )
            if ctx.batch.cancelled is not None:
                if node is not None:
                    ctx.slots.release(node)
                end = ("interrupted", ctx.batch.cancelled, ctx.batch.exit_code)
                return without_node(spec, end, lost, transcript)
            if node is None:
                why = "; ".join(entry["reason"] for entry in lost) or "no node to run it on"
                return without_node(spec, ("failed", why, 1), lost, transcript)
            try:
                result = self._on(ctx, node, spec, transcript)
            except NodeLostError as exc:
                ctx.slots.lose(node, str(exc))
                lost.append({"node": node.id, "reason": str(exc), "transcript": None})
                lost[-1]["transcript"] = transcript.set_aside()
                logger.warning("phase {}: {} ({} run(s) so far)", spec.name, exc, len(lost))
                if len(lost) > self.reruns:
                    return without_node(spec, ("failed", str(exc), 1), lost, transcript)
                continue
            finally:
                ctx.slots.release(node)
            final = settle(result, spec, node, lost)
            write_result(final)
            return final

    def _on(
        self, ctx: _Context, node: Node, spec: PhaseSpec, transcript: TranscriptFile
    ) -> PhaseResult:
        """Run the phase on `node`, writing what it streams back; `NodeLostError` if it dies."""
        ray, run_id = ctx.ray, f"{spec.name}-{uuid.uuid4().hex[:8]}"
        ctx.batch.add(_Remote(node.handle, run_id))
        method = node.handle.run.options(_generator_backpressure_num_objects=BACKPRESSURE)
        stream, result = method.remote(run_id, spec, ctx.view(spec)), None
        transcript.write([])  # the transcript exists from the start, as with the local executor
        try:
            while True:
                ready, _ = ray.wait([stream], timeout=SILENT)
                if not ready:
                    raise NodeLostError(f"node {node.id} said nothing for {SILENT:.0f}s")
                try:
                    piece = ray.get(next(stream), timeout=SILENT)
                except StopIteration:
                    break
                transcript.write(piece["lines"])
                ctx.show(piece["out"])
                result = piece.get("result", result)
                if "missing" in piece:
                    result = PhaseResult(
                        phase=spec.name, verdict="failed", reason=piece["missing"], exit_code=1
                    )
        except _lost_errors(ray) as exc:
            raise NodeLostError(f"node {node.id} was lost ({type(exc).__name__})") from exc
        if result is None:
            raise NodeLostError(f"node {node.id} ended the phase without a result")
        transcript.close()
        return result


def _unrun(spec: PhaseSpec, reason: str) -> PhaseResult:
    return without_node(spec, ("failed", reason, 1), [], TranscriptFile(spec.output.transcript))


def _lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    errors = ray.exceptions
    return (
        errors.RayActorError,
        errors.NodeDiedError,
        errors.ObjectLostError,
        errors.WorkerCrashedError,
        errors.GetTimeoutError,
    )


def _answering(ray: Any, nodes: list[Node]) -> list[Node]:
    """The nodes whose actor started in time (a node whose slots another driver holds does
    not); `RunnerError` if none."""
    calls = {node.handle.info.remote(): node for node in nodes}
    ready, _ = ray.wait(list(calls), num_returns=len(calls), timeout=NODE_START_TIMEOUT)
    usable = []
    for ref in ready:
        with contextlib.suppress(ray.exceptions.RayError):
            info = ray.get(ref)
            slots = calls[ref].slots
            logger.info("ray: node {} runs {} phase(s) at once", info["node"], slots)
            usable.append(calls[ref])
    for node in nodes:
        if node not in usable:
            with contextlib.suppress(Exception):
                ray.kill(node.handle)
    if not usable:
        raise RunnerError(
            f"no node of the Ray cluster offers the {RESOURCE} resource: start nodes with "
            f"--resources='{{\"{RESOURCE}\": N}}' (N phases at once on that node)"
        )
    return usable


def _stop_nodes(ray: Any, nodes: list[Node], quick: bool) -> None:
    """Every live node stops its servers (within `NODE_STOP_TIMEOUT`), then its actor goes."""
    calls = {n.handle.shutdown.remote(quick): n for n in nodes if n.lost is None}
    if calls:
        ready, pending = ray.wait(list(calls), num_returns=len(calls), timeout=NODE_STOP_TIMEOUT)
        logger.info("ray: {} node(s) stopped, {} did not answer in time", len(ready), len(pending))
    for node in nodes:
        with contextlib.suppress(Exception):
            ray.kill(node.handle)
