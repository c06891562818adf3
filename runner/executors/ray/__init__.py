"""The Ray executor: `driver` (RayExecutor, in the caller's process), `cluster` (connecting,
starting and stopping the node actors), `node` (a node's runner: its servers, mock and phases)
and `remote` (what crosses between them: typed chunks, slots, transcript files). Nothing is
imported here: Ray is imported only when the executor runs.
"""
