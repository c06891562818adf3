"""The Ray executor's pure parts (runner.executors.ray.remote) and the executor seam: which node
runs the next phase, what a node hands back, the driver's transcript file and final result, and
how `run_phases` and the CLI choose an executor. Nothing here imports Ray or starts a server."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from pathlib import Path

import pytest

from core.errors import RunnerError
from runner.api import Batch, run_phases
from runner.cli import main
from runner.executors.ray import remote
from runner.executors.ray.cluster import node_slots
from runner.executors.ray.driver import import_ray
from runner.phase import load_phase
from runner.supervisor.result import PhaseResult

pytestmark = pytest.mark.timeout(30)

PHASE = "name: {name}\nprompt: hi\nmodel: test/mock-model\nserver:\n  opencode: no-such-opencode\n"


def spec_of(tmp_path, name="p"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(PHASE.format(name=name))
    return load_phase(path)


def never():
    return False


def test_the_least_busy_node_with_a_free_slot_runs_the_next_phase():
    big, small = remote.Node("big", 2), remote.Node("small", 1)
    slots = remote.NodeSlots([big, small])
    taken = [slots.acquire(frozenset(), never).id for _ in range(3)]
    assert taken == ["big", "small", "big"]  # 0/2 ties 0/1 (first wins), then 1/2 > 0/1
    slots.release(small)
    assert slots.acquire(frozenset(), never) is small


def test_a_full_cluster_makes_the_next_phase_wait_for_a_slot():
    node = remote.Node("only", 1)
    slots = remote.NodeSlots([node])
    assert slots.acquire(frozenset(), never) is node
    got = []
    waiter = threading.Thread(target=lambda: got.append(slots.acquire(frozenset(), never)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # still waiting: no slot
    slots.release(node)
    waiter.join(5)
    assert got == [node]


def test_lost_and_avoided_nodes_run_nothing_and_a_stop_ends_the_wait():
    a, b = remote.Node("a", 1), remote.Node("b", 1)
    slots = remote.NodeSlots([a, b])
    slots.lose(a, "gone")
    assert slots.acquire(frozenset({"b"}), never) is None  # nowhere left to run it
    assert slots.acquire(frozenset(), never) is b
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    assert slots.acquire(frozenset(), stop.is_set) is None  # b is busy: waits until stopped
    assert a.lost == "gone"


def test_the_tail_hands_over_complete_lines_only(tmp_path):
    path = tmp_path / "t.jsonl"
    tail = remote.Tail(path)
    assert tail.read() == []  # not written yet
    path.write_text('{"a": 1}\n{"b"')
    assert tail.read() == ['{"a": 1}']
    with open(path, "a") as handle:
        handle.write(': 2}\n{"c": 3}\n')
    assert tail.read() == ['{"b": 2}', '{"c": 3}']
    assert tail.read() == []


def test_a_tail_read_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(remote, "TAIL_CHUNK", 10)
    path = tmp_path / "t.jsonl"
    path.write_text("aaaa\nbbbb\ncccc\n")
    tail = remote.Tail(path)
    assert tail.read() == ["aaaa", "bbbb"]
    assert tail.read() == ["cccc"]


def test_what_a_node_sends_names_the_drivers_files(tmp_path):
    spec = spec_of(tmp_path)
    local = remote.local_copy(spec, tmp_path / "node" / "run-1")
    assert local.output.transcript.parent == tmp_path / "node" / "run-1"
    assert local.output.transcript.name == spec.output.transcript.name
    assert local.output.earlier == ""
    out = remote.TextBuffer()
    out.write(f"   transcript: {local.output.transcript}\n")
    local.output.transcript.parent.mkdir(parents=True)
    line = json.dumps({"summary": {"result": str(local.output.result)}})
    local.output.transcript.write_text(line + "\n")
    piece = remote.chunk(out, remote.Tail(local.output.transcript), remote.renames(local, spec))
    assert piece["out"] == f"   transcript: {spec.output.transcript}\n"
    assert json.loads(piece["lines"][0]) == {"summary": {"result": str(spec.output.result)}}
    assert remote.chunk(out, remote.Tail(tmp_path / "none"))["out"] == ""  # drained


def test_a_lost_nodes_part_of_the_transcript_is_set_aside(tmp_path):
    file = remote.TranscriptFile(tmp_path / "runs" / "p.jsonl")
    file.write(["first"])
    moved = file.set_aside()
    assert moved == str(tmp_path / "runs" / "p.lost-1.jsonl")
    assert (tmp_path / "runs" / "p.lost-1.jsonl").read_text() == "first\n"
    file.write(["second"])
    file.close()
    assert (tmp_path / "runs" / "p.jsonl").read_text() == "second\n"
    assert file.set_aside().endswith("p.lost-2.jsonl")


def test_a_lost_node_is_noted_after_the_next_runs_header_or_before_a_verdict(tmp_path):
    file = remote.TranscriptFile(tmp_path / "p.jsonl")
    file.write(['{"type":"runner.header"}', "a"])
    file.set_aside()
    file.note({"type": "runner.node_lost", "node": "n1"})
    file.write([])  # the next run's transcript exists from its start
    file.write(['{"type":"runner.header"}', "b"])
    file.write(["c"])
    file.set_aside()
    file.note({"type": "runner.node_lost", "node": "n2"})
    file.write(['{"type":"runner.verdict_reached"}'])  # no node ran it: the driver's verdict
    file.close()
    assert (tmp_path / "p.lost-2.jsonl").read_text().splitlines() == [
        '{"type":"runner.header"}',
        '{"type": "runner.node_lost", "node": "n1"}',
        "b",
        "c",
    ]
    assert (tmp_path / "p.jsonl").read_text().splitlines() == [
        '{"type": "runner.node_lost", "node": "n2"}',
        '{"type":"runner.verdict_reached"}',
    ]


def test_a_phase_no_node_finished_still_gets_its_files(tmp_path):
    spec = spec_of(tmp_path)
    lost = [{"node": "n1", "reason": "node n1 was lost", "transcript": None}]
    file = remote.TranscriptFile(spec.output.transcript)
    result = remote.without_node(spec, ("failed", "node n1 was lost", 1), lost, file)
    written = json.loads(spec.output.result.read_text())
    assert (written["verdict"], written["exit_code"]) == ("failed", 1)
    assert written["executor"] == {"name": "ray", "node": None, "lost": lost}
    (line,) = spec.output.transcript.read_text().splitlines()
    assert json.loads(line)["type"] == "runner.verdict_reached"
    assert json.loads(line)["summary"]["reason"] == result.reason


def test_a_nodes_result_is_settled_with_the_drivers_paths(tmp_path):
    spec = spec_of(tmp_path)
    mine = PhaseResult(phase="p", verdict="done", reason="ok", exit_code=0, transcript="/node/t")
    settled = remote.settle(mine, spec, remote.Node("n2", 1), [{"node": "n1"}])
    assert settled.transcript == str(spec.output.transcript)
    assert settled.result_path == str(spec.output.result)
    assert settled.executor == {"name": "ray", "node": "n2", "lost": [{"node": "n1"}]}


class Recorder:
    """An executor: anything with `run(specs, parallel, batch, options)`."""

    def __init__(self):
        self.calls = []

    def run(self, specs, parallel, batch, options):
        self.calls.append(([s.name for s in specs], parallel, batch, options))
        return [PhaseResult(phase=s.name, verdict="done", reason="", exit_code=0) for s in specs]


def test_run_phases_hands_the_batch_to_its_executor(tmp_path):
    executor, batch = Recorder(), Batch()
    specs = [spec_of(tmp_path, "a"), spec_of(tmp_path, "b")]
    results = run_phases(specs, parallel=3, executor=executor, batch=batch, mode="json")
    assert [r.phase for r in results] == ["a", "b"]
    assert executor.calls == [(["a", "b"], 3, batch, {"mode": "json"})]
    with pytest.raises(ValueError, match="executor must be 'local', 'ray'"):
        run_phases(specs, executor="dask")


def test_ray_address_without_the_ray_executor_is_a_usage_error(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(PHASE.format(name="p"))
    assert main([str(path), "--ray-address", "127.0.0.1:6379"]) == 64
    assert capsys.readouterr().err == (
        "runner: --ray-address 127.0.0.1:6379: needs --executor ray\n"
    )


def test_the_ray_executor_without_ray_installed_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    for name in ("RAY_USAGE_STATS_ENABLED", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
        monkeypatch.setenv(name, "0")  # import_ray sets them: undone after the test
    path = tmp_path / "p.yaml"
    path.write_text(PHASE.format(name="p"))
    assert main([str(path), "--executor", "ray"]) == 64
    assert capsys.readouterr().err == "runner: --executor ray needs Ray: run `make setup-ray`\n"
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*.json"))
    with pytest.raises(RunnerError):
        import_ray(None)


def test_a_phase_attached_to_a_loopback_server_cannot_run_on_ray(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(PHASE.format(name="p") + "  attach: http://127.0.0.1:4096\n")
    assert main([str(path), "--executor", "ray"]) == 64
    assert capsys.readouterr().err == (
        f"runner: {path}: server.attach: http://127.0.0.1:4096 is this machine's loopback, "
        "out of the Ray nodes' reach (run it with --executor local)\n"
    )


def test_the_nodes_terminal_drops_what_does_not_fit_and_says_so():
    out = remote.TextBuffer(limit=10)
    out.write("12345")
    out.write("678901")  # would pass the bound: dropped
    out.write("abcde")
    assert out.drain() == "12345abcde[runner] 6 characters of output dropped (driver behind)\n"
    assert out.drain() == ""


def test_a_batch_forgets_phases_that_ended():
    batch, cancelled = Batch(), []

    class Handle:
        def cancel(self, reason, exit_code=130):
            cancelled.append((reason, exit_code))

    ended, running = Handle(), Handle()
    batch.add(ended)
    batch.add(running)
    batch.discard(ended)
    batch.cancel("stop", 143)
    assert cancelled == [("stop", 143)]
    assert (batch.cancelled, batch.exit_code) == ("stop", 143)


def test_a_node_that_cannot_run_a_phase_says_why_in_its_only_chunk(tmp_path):
    from runner.executors.ray.node import NodeRunner

    spec = spec_of(tmp_path)
    gone = dataclasses.replace(spec, directory=tmp_path / "not-here")
    node = NodeRunner("n1", {})
    try:
        chunks = list(node.run("r1", gone, {"mode": "plain", "prefix": None}))
    finally:
        assert node.shutdown(quick=True) == 0  # no server was started for it
    assert chunks == [
        {
            "out": "",
            "lines": [],
            "error": f"node n1: {tmp_path / 'not-here'} is not on this node (a shared filesystem?)",
        }
    ]


def test_the_live_tables_lines_from_a_node_name_the_drivers_files(tmp_path):
    from rich.text import Text

    from actors.live import BoardRelay

    spec = spec_of(tmp_path)
    local = remote.local_copy(spec, tmp_path / "node[1]")
    relay = BoardRelay(lambda: 0)
    relay.row("p")
    relay.print(Text.assemble(("transcript: ", "bold"), str(local.output.transcript)))
    news = remote.board_news(relay, remote.renames(local, spec))
    (markup,) = news["printed"]
    assert Text.from_markup(markup).plain == f"transcript: {spec.output.transcript}"
    assert news["status"]["state"] == "starting"


def test_the_nodes_import_the_runner_from_this_checkout():
    """The nodes' PYTHONPATH is the folder holding `runner/` (not a folder inside it, where the
    executor's own `ray` package would hide Ray's from the node's workers)."""
    from runner.executors.ray.cluster import ROOT

    assert (Path(ROOT) / "runner" / "__init__.py").is_file()
    assert not (Path(ROOT) / "ray").exists()


def test_a_node_offers_its_runner_phase_slots_or_else_one_a_cpu():
    assert node_slots({"CPU": 8.0, "runner_phase": 3.0}, None) == (
        3,
        {"num_cpus": 0, "resources": {"runner_phase": 3}},
    )
    assert node_slots({"CPU": 4.0}, None) == (4, {"num_cpus": 4})  # a plain cluster's node
    assert node_slots({"CPU": 4.0}, 2) == (2, {"num_cpus": 2})  # --slots-per-node
    assert node_slots({"CPU": 1.0}, 3) == (3, {"num_cpus": 1})  # more slots than CPUs
    assert node_slots({"CPU": 4.0, "runner_phase": 1.0}, 6)[0] == 1  # runner_phase overrides
    assert node_slots({}, None)[0] == 0  # nothing to offer: no actor there
