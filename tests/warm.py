"""Warm opencode servers, shared by the end-to-end tests that are not about starting one.

Starting opencode costs about 2 s of CPU, and its first phase nearly 2 s more; a test that only
needs *a* server behind the mock takes a warm one instead, and drives it through the product's
own attach path (`--attach URL`, `server.attach`), as a user attaches to a server of their own.

Each pytest process (each xdist worker) keeps its own: one server per opencode configuration
(the mock provider plus the test's extra keys), each behind a mock LLM of its own, in a HOME of
its own. `WarmServers.take(script, config)` resets that mock to the test's script (attempt
counters and journal start afresh) and returns the server; `settle()`, after the test, has
every server it used dispose of its instances (one per directory a phase ran in: each keeps a
file watcher and its caches, about 0.05 of a core while idle and 50-60 MB). A server that died
is started again; one that has served `USES` tests is replaced (opencode's memory grows with
every session it keeps); past `CAP` servers the least recently used is stopped. Tests run one
at a time in a worker, so a server serves one test at a time.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka
import requests

from actors import ServerSpec
from messages import ServerFailed, ServerReady
from mock import MockLLM, opencode_provider_config
from tests.conftest import LONG_LIVED
from tests.helpers import Inbox, isolated_env, make_project, start_server

CAP = 3  # servers kept warm per worker
USES = 40  # tests a server serves before it is replaced
DISPOSE_TIMEOUT = 10.0
START_TIMEOUT = 60.0


@dataclass
class Warm:
    """A running opencode server behind its mock."""

    mock: MockLLM
    ready: ServerReady
    server: pykka.ActorRef
    uses: int = 0

    @property
    def url(self) -> str:
        return self.ready.url

    @property
    def password(self) -> str:
        assert self.ready.password is not None
        return self.ready.password

    def alive(self) -> bool:
        return self.server.is_alive()

    def dispose(self) -> None:
        """Drop every instance the server keeps (`POST /global/dispose`); a server that does
        not answer is taken as dead (the next `take` starts another)."""
        try:
            response = requests.post(
                f"{self.url}/global/dispose",
                auth=("opencode", self.password),
                timeout=DISPOSE_TIMEOUT,
            )
            response.raise_for_status()
        except requests.RequestException:
            self.stop()

    def stop(self) -> None:
        LONG_LIVED.discard(self.server)
        self.server.stop()
        self.mock.stop()


class WarmServers:
    """This process's warm servers, by configuration (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._servers: OrderedDict[str, Warm] = OrderedDict()
        self._started = 0
        self._used: list[Warm] = []

    def take(self, script: Any, config: dict[str, Any] | None = None) -> Warm:
        """A warm server for `config` (extra opencode configuration), its mock serving
        `script` as a fresh mock would."""
        key = json.dumps(config or {}, sort_keys=True)
        warm = self._servers.pop(key, None)
        if warm is not None and (not warm.alive() or warm.uses >= USES):
            warm.stop()
            warm = None
        if warm is None:
            warm = self._start(config or {})
        self._servers[key] = warm  # the most recently used last
        while len(self._servers) > CAP:
            _, oldest = self._servers.popitem(last=False)
            oldest.stop()
        warm.mock.reset(script)
        warm.uses += 1
        self._used.append(warm)
        return warm

    def settle(self) -> None:
        """After a test: every server it took drops the instances the test's phases made."""
        used, self._used = self._used, []
        for warm in {id(w): w for w in used}.values():
            if warm.alive():
                warm.dispose()

    def stop(self) -> None:
        """Stop every server and mock."""
        while self._servers:
            _, warm = self._servers.popitem()
            warm.stop()

    def _start(self, config: dict[str, Any]) -> Warm:
        self._started += 1
        root = self._root / f"server-{self._started}"
        mock = MockLLM({"turns": [{"text": "warming up"}]}).start()
        spec = ServerSpec(
            directory=str(make_project(root)),
            log_path=str(root / "server.log"),
            # a test's config may name the mock as `{env:MOCK_LLM_URL}`, as a phase file does
            env={**isolated_env(root), "MOCK_LLM_URL": mock.url},
            config_content=json.dumps({**opencode_provider_config(mock.url), **config}),
        )
        inbox = Inbox()
        server = start_server(spec, inbox)
        LONG_LIVED.add(server)
        ready = inbox.expect((ServerReady, ServerFailed), timeout=START_TIMEOUT)
        warm = Warm(mock=mock, ready=ready, server=server)
        if isinstance(ready, ServerFailed):
            warm.stop()
        assert isinstance(ready, ServerReady), f"a warm server did not start: {ready}"
        return warm
