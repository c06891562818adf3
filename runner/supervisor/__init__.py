"""The driver of one phase, and what it decides with.

- `driver`: `Supervisor`, which starts the phase (server, session, actors), watches it and ends
  it (result first, then the verdict, then every actor and the server stopped).
- `session`: the session's creation with the phase's permission rules, checked.
- `routes`: where routing is decided: the table of which message goes to which consumer, and
  how each hand-off is bounded (`ROUTES`, `INBOXES`, `Router`).
- `wiring`: the actors of one phase around its router, started and stopped in order.
- `watch`: the supervisor's decisions, pure (`Watch`).
- `handle`: one phase in this process for a caller (`start_phase`, `PhaseHandle`).
- `result`: the phase's result (`PhaseResult`) and its file.

Nothing is imported here: `result` is light and the CLI uses it early; the rest is not.
"""
