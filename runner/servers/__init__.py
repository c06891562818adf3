"""The one owner of opencode servers.

- `keys`: which server a phase needs (`server_key`, `server_spec`), and the servers the CLI
  starts before its heavy imports (`prestart`).
- `shared`: `SharedServer`, one server (spawned, or attached to) for the phases that ask for it:
  started once, watched, its phases' sessions aborted when they end badly, stopped with them;
  one event reader per directory and reading policy.
- `streams`: `StreamHub`, which hands a reader's batches and news to each phase on it.
- `pool`: `ServerPool`, a batch's servers leased one phase at a time, recycled when they have
  served `server.recycle_after` phases or hold `server.recycle_rss_mib`, replaced when dead.
- `daemon`: the pool daemon (`python -m runner up`): warm servers lent to separate runs, whole,
  one run at a time; spare, recycling, idle expiry and a cap (`Registry`), over loopback HTTP.
- `lease`: a run's side of it: the state file found and judged, leases taken (`prelease`, for
  the first servers, before the heavy imports) and given back (`Leases`), one line when the
  daemon is there but cannot be used.

The process itself is the server actor's (`actors.server.ServerActor`, over `actors.process`).
Nothing is imported here: the CLI imports `keys` and `lease` before opencode starts, and
`shared` is heavy.
"""
