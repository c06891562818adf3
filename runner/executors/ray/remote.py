"""What a remote executor needs besides its engine, kept free of it (and of IO but files): the
slots of the nodes a batch runs on, the node side's output buffer and transcript tail, and the
driver side's transcript file and final result. `runner.executors.ray.node` and
`runner.executors.ray.driver` use them; nothing here imports Ray."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import PhaseFileError
from runner.phase import PhaseSpec
from runner.phase.derive import sibling
from runner.servers.keys import server_key
from runner.supervisor.result import PhaseResult, write_result

TAIL_CHUNK = 4 << 20  # bytes of transcript one chunk carries at most: the hand-off is bounded


@dataclass(slots=True)
class Node:
    """One node of the batch: who it is, how many phases it may run at once, how many it does."""

    id: str
    slots: int
    handle: Any = None  # the engine's handle of the node's actor
    busy: int = 0
    lost: str | None = None  # why the node is gone, once it is


class NodeSlots:
    """Which node runs the next phase: the least busy one with a free slot, never a lost one
    nor one the phase was lost on already."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self._free = threading.Condition()

    def acquire(
        self, avoid: frozenset[str], stop: Callable[[], bool], slice_s: float = 0.1
    ) -> Node | None:
        """A node with a free slot (taken); None once `stop()` is true or no node could ever
        run the phase (all lost or avoided)."""
        with self._free:
            while not stop():
                usable = [n for n in self.nodes if n.lost is None and n.id not in avoid]
                if not usable:
                    return None
                free = [n for n in usable if n.busy < n.slots]
                if free:
                    node = min(free, key=lambda n: n.busy / n.slots)
                    node.busy += 1
                    return node
                self._free.wait(slice_s)
        return None

    def release(self, node: Node) -> None:
        """The phase on `node` is over: its slot is free."""
        with self._free:
            node.busy -= 1
            self._free.notify_all()

    def lose(self, node: Node, reason: str) -> None:
        """`node` is gone: no phase is sent there again."""
        with self._free:
            node.lost = node.lost or reason
            self._free.notify_all()


class TextBuffer(io.TextIOBase):
    """The node side's terminal: what the renderer writes, drained into each chunk. Bounded:
    past `limit` characters not yet drained, text is dropped (and said so), never waited for:
    the renderer must not block on a driver that is behind."""

    def __init__(self, limit: int = TAIL_CHUNK) -> None:
        self._lock = threading.Lock()
        self._parts: list[str] = []
        self._size = 0
        self._limit = limit
        self._dropped = 0

    def write(self, text: str) -> int:
        with self._lock:
            if self._size + len(text) > self._limit:
                self._dropped += len(text)
            else:
                self._parts.append(text)
                self._size += len(text)
        return len(text)

    def isatty(self) -> bool:
        return False

    def drain(self) -> str:
        """Everything written since the last drain (and how much did not fit)."""
        with self._lock:
            parts, self._parts, self._size = self._parts, [], 0
            dropped, self._dropped = self._dropped, 0
        if dropped:
            parts.append(f"[runner] {dropped} characters of output dropped (driver behind)\n")
        return "".join(parts)


class Tail:
    """The complete lines a transcript has gained since the last read (at most `TAIL_CHUNK`
    bytes a read; the rest comes with the next)."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read(self) -> list[str]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read(TAIL_CHUNK)
        except FileNotFoundError:
            return []
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        return [line.decode("utf-8", "replace") for line in lines]


Renames = tuple[tuple[str, str], ...]


def renames(local: PhaseSpec, spec: PhaseSpec) -> Renames:
    """The node's own transcript and result paths, each with the driver's path that replaces
    it in what the node sends back (as text, and as JSON writes it)."""
    pairs = []
    for mine, real in (
        (local.output.transcript, spec.output.transcript),
        (local.output.result, spec.output.result),
    ):
        pairs.append((str(mine), str(real)))
        pairs.append((json.dumps(str(mine))[1:-1], json.dumps(str(real))[1:-1]))
    return tuple(dict.fromkeys(pairs))


def renamed(text: str, pairs: Renames) -> str:
    """`text` naming the driver's files instead of the node's."""
    for mine, real in pairs:
        if mine in text:
            text = text.replace(mine, real)
    return text


def chunk(out: TextBuffer, tail: Tail, pairs: Renames = (), **extra: Any) -> dict[str, Any]:
    """What one hand-off from a node carries: new terminal text and transcript lines, naming
    the driver's files instead of the node's."""
    return {
        "out": renamed(out.drain(), pairs),
        "lines": [renamed(line, pairs) for line in tail.read()],
        **extra,
    }


def board_news(relay: Any, pairs: Renames) -> dict[str, Any]:
    """The relay's row, and its printed lines as rich markup naming the driver's files."""
    from rich.markup import escape

    marked = tuple((escape(mine), escape(real)) for mine, real in pairs)
    news = relay.drain()
    news["printed"] = [renamed(text.markup, marked) for text in news["printed"]]
    return news


def local_copy(spec: PhaseSpec, folder: Path) -> PhaseSpec:
    """The phase with its transcript and result in a node's own `folder`: the node streams them
    back and the driver writes the real ones."""
    output = dataclasses.replace(
        spec.output,
        transcript=folder / spec.output.transcript.name,
        result=folder / spec.output.result.name,
        earlier="",
    )
    return dataclasses.replace(spec, output=output)


@dataclass(slots=True)
class TranscriptFile:
    """The driver's copy of a phase's transcript, written line by line as chunks arrive; a
    node lost mid-phase leaves its part beside it (`.lost-N.jsonl`)."""

    path: Path
    moved: list[str] = field(default_factory=list)
    _handle: Any = None
    _headed: bool = False  # the header line is written
    _notes: list[str] = field(default_factory=list)  # records of the driver's, after the header

    def write(self, lines: list[str]) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (closed by close)
            self._headed = False
        if lines and not self._headed:
            self._headed = True
            at = 1 if _is_header(lines[0]) else 0
            lines = [*lines[:at], *self._notes, *lines[at:]]
            self._notes = []
        if lines:
            self._handle.write("".join(line + "\n" for line in lines))
            self._handle.flush()

    def note(self, record: dict[str, Any]) -> None:
        """A record of the driver's (a node lost), written after the next run's header."""
        self._notes.append(json.dumps(record, default=str))

    def set_aside(self) -> str | None:
        """Close the lost attempt's part and move it beside the transcript; its new path."""
        self.close()
        if not self.path.exists():
            return None
        moved = sibling(self.path, f".lost-{len(self.moved) + 1}.jsonl")
        os.replace(self.path, moved)
        self.moved.append(moved)
        return moved

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _is_header(line: str) -> bool:
    try:
        return json.loads(line).get("type") == "runner.header"
    except (ValueError, AttributeError):
        return False


def settle(
    result: PhaseResult, spec: PhaseSpec, node: Node | None, lost: list[dict[str, Any]]
) -> PhaseResult:
    """The node's result with the driver's paths and where it ran (and was lost)."""
    executor = {"name": "ray", "node": node.id if node else None, "lost": lost}
    return dataclasses.replace(
        result,
        transcript=str(spec.output.transcript),
        result_path=str(spec.output.result),
        executor=executor,
    )


def without_node(
    spec: PhaseSpec,
    end: tuple[str, str, int],
    lost: list[dict[str, Any]],
    transcript: TranscriptFile,
) -> PhaseResult:
    """The result of a phase no node finished (cancelled before it started, or every node it
    was sent to was lost): `end` is its verdict, reason and exit code; its verdict line ends
    the transcript, and the result is written."""
    verdict, reason, exit_code = end
    result = PhaseResult(
        phase=spec.name,
        verdict=verdict,
        reason=reason,
        exit_code=exit_code,
        started_at=time.time(),
        transcript=str(spec.output.transcript),
        result_path=str(spec.output.result),
        executor={"name": "ray", "node": None, "lost": lost},
    )
    transcript.write([verdict_line(result)])
    transcript.close()
    write_result(result)
    return result


def verdict_line(result: PhaseResult) -> str:
    """The transcript's last line, as the transcript actor writes it."""
    return json.dumps(
        {
            "type": "runner.verdict_reached",
            "time": time.time(),
            "verdict": result.verdict,
            "reason": result.reason,
            "exit_code": result.exit_code,
            "summary": result.to_dict(),
        },
        default=str,
    )


def refuse_attached(specs: list[PhaseSpec]) -> None:
    """`PhaseFileError` for a phase attached to a server: it is this machine's loopback, which
    the nodes cannot reach."""
    for spec in specs:
        if spec.server.attach is not None:
            raise PhaseFileError(
                f"{spec.source}: server.attach: {spec.server.attach} is this machine's loopback, "
                "out of the Ray nodes' reach (run it with --executor local)"
            )


def warm(specs: list[PhaseSpec], parallel: int) -> list[PhaseSpec]:
    """One phase per distinct server among the first `parallel`: whose servers nodes start."""
    firsts: dict[Any, PhaseSpec] = {}
    for spec in specs[:parallel]:
        if spec.server.attach is None:
            firsts.setdefault(server_key(spec), spec)
    return list(firsts.values())
