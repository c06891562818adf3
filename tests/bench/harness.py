"""One phase's actors on a benchmark server's stream, wired as `runner/supervisor.py` wires them.

`PhaseActors` does what `Supervisor._phase` does with the product's public pieces (`Wiring`,
`Outputs`, `SessionActors`, `runner.phase.derive`, a `StreamHub` in front of the shared
`SseReaderActor`), minus what needs a real opencode: no session is created and no prompt sent
(the termination policy is never told to `Begin`); the stream's root session is `ROOT`. The
phase's `events` consumer (where the CLI connects its event buffer) is `EndWatch`: it sees the
reader's end-of-stream `StreamDropped` after every batch before it. `drain()` then asks every
actor for its urn: inboxes are FIFO, so each answers once it has handled its backlog.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import pykka
import yaml

from actors.checks import DoneCriteria, take_baseline
from actors.opencode_client import OpencodeClient
from actors.sse_reader import SseReaderActor
from actors.termination import PromptOptions
from core.protocol import WireV2
from messages.pipeline import Tracked
from messages.records import Notice
from messages.server import ServerReady
from messages.stream import StreamDropped
from runner.phase import load_phase
from runner.phase.derive import banner, permission_policy, termination_policy
from runner.servers.streams import StreamHub
from runner.supervisor.wiring import Outputs, SessionActors, ViewOptions, Wiring
from tests.bench.sse_server import VERSIONS
from tests.bench.stream import ROOT

STOP_TIMEOUT = 10.0


# The CLI always has its server's password to mask: the benchmarks pay for that work too.
SECRETS = ("bench-password-never-in-the-stream-" + "x" * 8,)


class NullSink:
    """Where the renderer prints when nobody reads: nowhere."""

    def write(self, text: str) -> int:
        """Swallow `text`."""
        return len(text)

    def flush(self) -> None:
        """Nothing to flush."""

    def isatty(self) -> bool:
        """Not a terminal."""
        return False


class EndWatch:
    """Counts the raw events forwarded and the warnings; sees the end of the stream. Runs on
    the tracker's thread, like the CLI's event buffer: keep it cheap."""

    def __init__(self) -> None:
        self.ended = threading.Event()
        self.forwarded = 0
        self.notices: list[str] = []

    def __call__(self, message: Any) -> None:
        if isinstance(message, Tracked):
            self.forwarded += len(message.raw)
        elif isinstance(message, StreamDropped):
            self.ended.set()
        elif isinstance(message, Notice):
            self.notices.append(message.text)

    @property
    def fell_behind(self) -> int:
        """How many times the tracker dropped batches (and resynced them)."""
        return sum("fell behind" in text for text in self.notices)


def phase_file(root: Path) -> Path:
    """A minimal phase file whose project, transcript and result live under `root`."""
    project = root / "proj"
    project.mkdir(parents=True, exist_ok=True)
    phase = {
        "name": "bench",
        "prompt": "Stream.",
        "model": "test/mock-model",
        "directory": str(project),
        "output": {"transcript": str(root / "bench.jsonl"), "result": str(root / "bench.json")},
    }
    path = root / "phase.yaml"
    path.write_text(yaml.safe_dump(phase))
    return path


class PhaseActors:
    """The actors of one phase on `url`'s stream (a context manager; see the module doc)."""

    def __init__(
        self, url: str, root: Path, *, mode: str, out: TextIO | Any, line: int = 1
    ) -> None:
        self.spec = spec = load_phase(phase_file(root))
        self.transcript = Path(spec.output.transcript)
        self.watch = EndWatch()
        self.control: list[Any] = []  # what the router hands the supervisor
        self._url = url
        self._wiring = Wiring(self.control.append)
        self._view = ViewOptions(mode=mode, out=out)
        wire = WireV2() if line == 2 else None  # as `capabilities(version).protocol` picks it
        self._client = OpencodeClient(url, password=None, directory=str(spec.directory), wire=wire)
        self._version = VERSIONS[line]
        self._reader: pykka.ActorRef | None = None

    def __enter__(self) -> PhaseActors:
        spec, wiring = self.spec, self._wiring
        header = {"phase": spec.name, "label": spec.label, "directory": str(spec.directory)}
        outputs = Outputs(
            transcript=str(self.transcript),
            header=header,
            view=self._view,
            events=self.watch,
            redact=SECRETS,
        )
        try:
            wiring.start_outputs(outputs)
            criteria = DoneCriteria.from_checks(spec.done)
            actors = SessionActors(
                client=self._client,
                session_id=ROOT,
                permissions=permission_policy(spec),
                policy=termination_policy(spec, ROOT, time.monotonic()),
                prompt=PromptOptions(model=spec.model, agent=spec.agent, variant=spec.variant),
                criteria=criteria,
                baseline=take_baseline(spec.directory, criteria),
                directory=spec.directory,
                secrets=SECRETS,
            )
            self._hub = StreamHub()
            wiring.router.publish(banner(spec, self._ready(), ROOT))  # the transcript's header
            wiring.start_session(actors, self._hub.subscribe)
        except BaseException:
            self.__exit__()
            raise
        return self

    def start(self) -> None:
        """Start the event reader: the stream begins."""
        self._reader = SseReaderActor.start(
            client=self._client,
            subscribers=(self._hub.on_events,),
            publish=self._hub.on_news,
            secrets=SECRETS,
        )

    def drain(self, timeout: float) -> None:
        """Wait for the end of the stream, then for every actor to handle its backlog."""
        if not self.watch.ended.wait(timeout):
            raise TimeoutError(f"the stream did not end within {timeout:g} s")
        for ref in pykka.ActorRegistry.get_all():
            ref.proxy().actor_urn.get(timeout=timeout)

    def transcript_events(self) -> int:
        """Raw event lines in the transcript (its header and `runner.*` records aside)."""
        lines = self.transcript.read_text().splitlines()
        return sum(not json.loads(line)["type"].startswith("runner.") for line in lines)

    def __exit__(self, *_exc: object) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop(timeout=STOP_TIMEOUT)
        self._wiring.stop(STOP_TIMEOUT)
        self._client.close()

    def _ready(self) -> ServerReady:
        return ServerReady(
            url=self._url,
            version=self._version,
            password=None,
            pid=None,
            log_path=None,
            attached=True,
        )
