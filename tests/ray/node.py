"""A second Ray node on this machine, joined to a loopback cluster: `python -m tests.ray.node
GCS_ADDRESS RESOURCES_JSON`. It starts the same daemons (raylet and its workers) through the
same `Node` class as `ray start --address`, which cannot do it here: it swaps 127.0.0.1 for
the host's address unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, and with that set it refuses
to start a worker node at all. Prints `NODE <id>` once the node has joined; SIGTERM stops it.
"""

from __future__ import annotations

import json
import signal
import sys
import threading

from ray._private.node import Node
from ray._private.parameter import RayParams


def main() -> None:
    address, resources = sys.argv[1], json.loads(sys.argv[2])
    params = RayParams(
        gcs_address=address,
        node_ip_address="127.0.0.1",
        num_cpus=1,
        resources=resources,
        object_store_memory=100 * 1024 * 1024,
        include_log_monitor=False,
    )
    node = Node(params, head=False, shutdown_at_exit=False, spawn_reaper=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("NODE", node.node_id, flush=True)
    stop.wait()
    node.kill_all_processes(check_alive=False, allow_graceful=True)


if __name__ == "__main__":
    main()
