"""The Ray executor's plumbing: importing Ray as the runner needs it, joining (or starting) a
cluster, starting one `NodeRunner` actor per node (its `runner_phase` slots, or on a plain node
one slot a CPU), and stopping them. `runner.executors.ray.driver` runs the phases on what this
module starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.errors import RunnerError
from runner._logs import logger
from runner._mock import EmbeddedMock
from runner.executors.ray.remote import Node, refuse_attached
from runner.phase import PhaseSpec

RESOURCE = "runner_phase"
NODE_START_TIMEOUT = 60.0
NODE_STOP_TIMEOUT = 40.0
_SLICE = 0.2  # how often a wait for the nodes looks at the batch's cancel
# This checkout (the folder holding runner/): the nodes import the runner from here.
ROOT = str(Path(__file__).resolve().parents[3])


def cluster_address(address: str | None) -> str | None:
    """The cluster to join: `address`, else `$RAY_ADDRESS`; None: a one-node Ray here."""
    return address or os.environ.get("RAY_ADDRESS") or None


def import_ray(address: str | None) -> Any:
    """`ray`, imported with what the runner needs of it: no usage stats, and a loopback
    cluster kept on 127.0.0.1 (Ray otherwise swaps it for the host's address)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    host = (cluster_address(address) or "127.0.0.1").removeprefix("ray://").rsplit(":", 1)[0]
    if host in ("127.0.0.1", "localhost"):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise RunnerError("--executor ray needs Ray: run `make setup-ray`") from None
    return ray


def prepare(specs: list[PhaseSpec], address: str | None) -> EmbeddedMock:
    """What a Ray batch needs checked before it starts (`PhaseFileError`, `RunnerError`), and
    the driver's mock LLM: none, each node starts its own."""
    EmbeddedMock(specs)  # one mock script per run, as with the local executor
    refuse_attached(specs)
    import_ray(address)
    return EmbeddedMock([])


def connect(ray: Any, address: str | None, parallel: int) -> bool:
    """Join the cluster at `address` (None: start a one-node Ray on loopback with `parallel`
    slots); False when this process was connected already (the caller's Ray: not ours to
    shut down)."""
    if ray.is_initialized():
        return False
    address = cluster_address(address)
    env = {"PYTHONPATH": ROOT, "RAY_USAGE_STATS_ENABLED": "0"}
    if os.environ.get("RUNNER_OPENCODE"):
        env["RUNNER_OPENCODE"] = os.environ["RUNNER_OPENCODE"]
    common = {"log_to_driver": False, "logging_level": logging.WARNING}
    common["runtime_env"] = {"env_vars": env}
    here = {"resources": {RESOURCE: parallel}, "include_dashboard": False}
    main = threading.current_thread() is threading.main_thread()
    ours = signal.getsignal(signal.SIGTERM) if main else None
    try:
        if address is not None:
            ray.init(address=address, **common)
        else:
            ray.init(address="local", _node_ip_address="127.0.0.1", **here, **common)
    finally:  # ray.init makes SIGTERM exit at once: the caller's handler (the CLI's) stays
        if ours is not None:
            signal.signal(signal.SIGTERM, ours)
    logger.info("ray: connected to {}", address or "a one-node Ray on loopback")
    return True


def node_slots(resources: Mapping[str, Any], per_node: int | None) -> tuple[int, dict[str, Any]]:
    """How many phases a node runs at once, and what its actor claims for them: the node's
    whole `runner_phase`, or (a node without it) `per_node` slots, by default one a CPU, on as
    many of its CPUs. Pure."""
    if RESOURCE in resources:
        slots = int(resources[RESOURCE])
        return slots, {"num_cpus": 0, "resources": {RESOURCE: slots}}
    cpus = int(resources.get("CPU", 0))
    slots = per_node if per_node is not None else cpus
    return slots, {"num_cpus": min(slots, cpus)}


def start_nodes(
    ray: Any,
    env: Mapping[str, str],
    firsts: list[PhaseSpec],
    stop: Callable[[], bool],
    per_node: int | None = None,
) -> list[Node]:
    """A `NodeRunner` on every alive node, claiming its slots (`node_slots`), each starting
    the servers of `firsts` (the first phases) at once."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from runner.executors.ray.node import NodeRunner

    offered = [
        (n["NodeID"], *node_slots(n.get("Resources") or {}, per_node))
        for n in ray.nodes()
        if n.get("Alive")
    ]
    env = {k: v for k, v in env.items() if k != "MOCK_LLM_URL"}  # each node has its own
    actor = ray.remote(NodeRunner)
    nodes = []
    for node_id, slots, claim in (found for found in offered if found[1] >= 1):
        handle = actor.options(
            **claim,
            max_concurrency=slots + 4,  # its phases, plus cancel and shutdown calls
            max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(node_id, env, firsts)
        nodes.append(Node(node_id, slots, handle))
    return _answering(ray, nodes, stop)


def _answering(ray: Any, nodes: list[Node], stop: Callable[[], bool]) -> list[Node]:
    """The nodes whose actor started in time (a node whose slots another driver holds does
    not); `RunnerError` if none, or if the batch is cancelled first."""
    calls = {node.handle.info.remote(): node for node in nodes}
    pending, deadline = list(calls), time.monotonic() + NODE_START_TIMEOUT
    while pending and time.monotonic() < deadline and not stop():
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=_SLICE)
    usable = []
    failures = []
    for ref, node in calls.items():
        if ref in pending:
            failures.append(f"node {node.id} did not start its actor in time")
            continue
        try:
            ray.get(ref, timeout=1)
        except Exception as exc:  # the actor's constructor failed: say why
            failures.append(f"node {node.id}: {str(exc).strip().splitlines()[-1]}")
            continue
        logger.info("ray: node {} runs {} phase(s) at once", node.id, node.slots)
        usable.append(node)
    for why in failures:
        logger.warning("ray: {}", why)
    for node in nodes:
        if node not in usable:
            with contextlib.suppress(Exception):
                ray.kill(node.handle)
    if stop():
        raise RunnerError("cancelled while the nodes started")
    if not usable:
        raise RunnerError(
            "; ".join(failures)
            or f"no node of the Ray cluster offers a slot (a CPU, or the {RESOURCE} resource: "
            f"--resources='{{\"{RESOURCE}\": N}}' for N phases at once on that node)"
        )
    return usable


def stop_nodes(ray: Any, nodes: list[Node], quick: bool) -> None:
    """Every node stops its servers (within `NODE_STOP_TIMEOUT`; a lost one that still
    answers too), then its actor goes."""
    calls = {n.handle.shutdown.remote(quick): n for n in nodes}
    if calls:
        ready, pending = ray.wait(list(calls), num_returns=len(calls), timeout=NODE_STOP_TIMEOUT)
        logger.info("ray: {} node(s) answered the stop, {} did not", len(ready), len(pending))
    for node in nodes:
        with contextlib.suppress(Exception):
            ray.kill(node.handle)


def lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """What Ray raises when a node (or its actor) is gone."""
    errors = ray.exceptions
    return (
        errors.RayActorError,
        errors.NodeDiedError,
        errors.ObjectLostError,
        errors.WorkerCrashedError,
        errors.LocalRayletDiedError,
        errors.GetTimeoutError,
    )
