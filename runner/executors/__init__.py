"""How a batch of phases runs: here (`local`), or on a Ray cluster (`ray`: the driver, the
cluster, each node's runner and what crosses between them). `runner.api.run_phases` picks one.
"""
