"""How a batch of phases runs: here (`runner.api` runs them in this process), or on a Ray
cluster (`ray`: the driver, the cluster, each node's runner and what crosses between them).
"""
