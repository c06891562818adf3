"""`python -m runner --executor ray` against a real Ray cluster on loopback (tests/ray/conftest):
phases spread over both nodes with every file written by the driver, Ctrl-C mid-batch, a node
killed mid-phase, `--skip-done`, and a one-node Ray the runner starts itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from actors.process import binary_version, resolve_binary
from tests.helpers import PROJECT_ROOT, make_project
from tests.ray.conftest import ours

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def drip(ticks, delay=0.1):
    return {"turns": [{"text": [f"tick {i} " for i in range(ticks)], "delay": delay}]}


def write_phases(root, names, script, **more):
    (root / "script.json").write_text(json.dumps(script))
    paths = []
    for name in names:
        phase = {
            "name": name,
            "prompt": "Say hello.",
            "model": "test/mock-model",
            "mock": str(root / "script.json"),
            "directory": str(make_project(root / f"work-{name}")),
            "timeouts": {"phase": "2m", "stall": "1m"},
            **more,
        }
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(phase))
        paths.append(path)
    return paths


def start(paths, env, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "runner", *map(str, paths), "--plain", "--executor", "ray", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc, timeout=180):
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, out, err


def results(root):
    return {
        data["phase"]: data
        for data in (
            json.loads(p.read_text()) for p in sorted((root / "runs").glob("*.result.json"))
        )
    }


def lines(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def wait_ticking(root, names, timeout=90):
    """Until every phase's transcript (written by the driver) shows the model talking."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list((root / "runs").glob("*.jsonl")) if (root / "runs").exists() else []
        ticking = {p.name.split("-")[0] for p in found if "tick" in p.read_text()}
        if ticking >= set(names):
            return
        time.sleep(0.1)
    raise TimeoutError(f"phases never started talking: {sorted(names)}")


def test_four_phases_on_both_nodes_with_every_file_on_the_driver(cluster, tmp_path):
    names = ["alpha", "beta", "gamma", "delta"]
    paths = write_phases(tmp_path, names, {"turns": [{"text": "Hello from a node."}]})
    code, out, err = finish(
        start(paths, cluster.env, "--ray-address", cluster.address, "--parallel", "4")
    )
    assert code == 0, (out[-3000:], err[-3000:])
    found = results(tmp_path)
    assert sorted(found) == sorted(names)
    assert {r["verdict"] for r in found.values()} == {"done"}
    # the nodes ran the opencode the driver names (`RUNNER_OPENCODE`: 2.x too)
    assert {r["server_version"] for r in found.values()} == {binary_version(resolve_binary(None))}
    assert len({r["executor"]["node"] for r in found.values()}) == 2  # both nodes ran phases
    assert cluster.second_id in {r["executor"]["node"] for r in found.values()}
    for name, result in found.items():
        assert Path(result["transcript"]).parent == tmp_path / "runs"
        assert result["result"] == str(sorted((tmp_path / "runs").glob(f"{name}-*.result.json"))[0])
        transcript = lines(result["transcript"])
        assert transcript[0]["type"] == "runner.header"
        assert transcript[-1]["type"] == "runner.verdict_reached"
        assert transcript[-1]["summary"]["transcript"] == result["transcript"]  # the driver's path
        assert f"[{name}] Hello from a node." in out
    assert "transcript: " + str(tmp_path / "runs") in out  # the verdict names the driver's files
    # Again with --skip-done: everything is done, nothing starts (no Ray, no server).
    code, out, err = finish(
        start(
            paths, {**cluster.env, "RAY_ADDRESS": "127.0.0.1:1"}, "--skip-done", "--parallel", "4"
        )
    )
    assert code == 0, err
    assert out.count("done (skipped)") == 4
    assert len(results(tmp_path)) == 4


def test_a_nodes_servers_are_recycled_as_a_phase_file_asks(cluster, tmp_path):
    names = ["one", "two", "three", "four"]
    script = {"turns": [{"text": "Hello from a fresh server."}]}
    paths = write_phases(tmp_path, names, script, server={"recycle_after": 1})
    code, out, err = finish(
        start(paths, cluster.env, "--ray-address", cluster.address, "--parallel", "2")
    )
    assert code == 0, (out[-3000:], err[-3000:])
    found = results(tmp_path)
    assert {r["verdict"] for r in found.values()} == {"done"}
    servers = {(r["executor"]["node"], r["server_pid"]) for r in found.values()}
    assert len(servers) == 4  # one phase a server, on whichever node


def test_a_plain_cluster_runs_a_batch_one_phase_a_cpu(plain_cluster, tmp_path):
    names = ["uno", "dos", "tres"]
    paths = write_phases(tmp_path, names, {"turns": [{"text": "Hello from a plain node."}]})
    code, out, err = finish(
        start(paths, plain_cluster.env, "--ray-address", plain_cluster.address, "--parallel", "3")
    )
    assert code == 0, (out[-3000:], err[-3000:])
    found = results(tmp_path)
    assert {r["verdict"] for r in found.values()} == {"done"}
    assert plain_cluster.second_id in {r["executor"]["node"] for r in found.values()}


@pytest.mark.parametrize(("sig", "expected"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_batch_ends_it_with_every_file_and_nothing_left(
    cluster, tmp_path, sig, expected
):
    names = ["one", "two", "three", "four"]
    paths = write_phases(tmp_path, names, drip(600))
    env = {**cluster.env, "RAY_ADDRESS": cluster.address}  # the cluster named the Ray way
    proc = start(paths, env, "--parallel", "4")
    wait_ticking(tmp_path, names)
    os.kill(proc.pid, sig)
    sent = time.monotonic()
    code, out, err = finish(proc, timeout=30)
    took = time.monotonic() - sent
    print(f"{sig.name} to exit: {took:.2f} s")
    assert code == expected, (out[-3000:], err[-3000:])
    assert took < 3.0, took
    found = results(tmp_path)
    assert sorted(found) == sorted(names)
    for result in found.values():
        assert (result["verdict"], result["exit_code"]) == ("interrupted", expected)
        assert lines(result["transcript"])[-1]["verdict"] == "interrupted"
    servers = [
        pid
        for pid in ours(cluster.home)
        if b"opencode" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert servers == []
    node_runners = [
        pid
        for pid in ours(cluster.home)
        if b"NodeRunner" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert node_runners == []


def test_a_node_killed_mid_phase_runs_the_phase_again_elsewhere(cluster, tmp_path):
    names = ["left", "right"]
    paths = write_phases(tmp_path, names, drip(60))
    proc = start(paths, cluster.env, "--ray-address", cluster.address, "--parallel", "2")
    wait_ticking(tmp_path, names)
    os.killpg(cluster.second.pid, signal.SIGKILL)  # the node: its raylet and workers
    killed = time.monotonic()
    deadline = killed + 120
    while not list((tmp_path / "runs").glob("*.lost-1.jsonl")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the driver never noticed the node was gone"
        time.sleep(0.05)
    print(f"node loss noticed after {time.monotonic() - killed:.2f} s")
    code, out, err = finish(proc)
    assert code == 0, (out[-3000:], err[-3000:])
    found = results(tmp_path)
    assert {r["verdict"] for r in found.values()} == {"done"}
    moved = [r for r in found.values() if r["executor"]["lost"]]
    assert len(moved) == 1, found
    (lost,) = moved[0]["executor"]["lost"]
    assert lost["node"] == cluster.second_id
    assert moved[0]["executor"]["node"] != cluster.second_id
    assert "tick" in Path(lost["transcript"]).read_text()  # the lost run's part, set aside
    again = moved[0]["executor"]["node"]
    record = lines(moved[0]["transcript"])
    assert record[-1]["verdict"] == "done"
    assert record[-1]["summary"]["executor"] == moved[0]["executor"]  # the result's facts
    assert record[0]["type"] == "runner.header"
    (note,) = [line for line in record if line["type"] == "runner.node_lost"]
    assert (note["node"], note["runs_again_on"]) == (cluster.second_id, again)
    assert note["transcript"] == lost["transcript"]
    phase = moved[0]["phase"]
    said = f"⚠ node {cluster.second_id} lost ({lost['reason']}); phase {phase} runs again on "
    assert f"{said}{again}" in out.splitlines(), out[-3000:]


def test_without_an_address_the_runner_starts_a_one_node_ray(tmp_path):
    from tests.helpers import isolated_env

    env = {**os.environ, **isolated_env(tmp_path), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    paths = write_phases(tmp_path, ["solo", "duo"], {"turns": [{"text": "Hello."}]})
    code, out, err = finish(start(paths, env, "--parallel", "2"))
    try:
        assert code == 0, (out[-3000:], err[-3000:])
        assert {r["verdict"] for r in results(tmp_path).values()} == {"done"}
    finally:
        for pid in ours(Path(env["HOME"])):
            os.kill(pid, signal.SIGKILL)
    assert ours(Path(env["HOME"])) == []


def test_the_embedding_api_runs_a_batch_on_the_callers_own_ray_connection(
    cluster, tmp_path, monkeypatch
):
    from runner.api import run_phases
    from runner.executors.ray.driver import RayExecutor, import_ray

    for name in ("RAY_USAGE_STATS_ENABLED", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
        monkeypatch.setenv(name, "0")  # what import_ray sets, undone after the test

    ray = import_ray(cluster.address)  # the embedder's Ray, connected before the batch
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        paths = write_phases(tmp_path, ["api-a", "api-b"], {"turns": [{"text": "Hi."}]})
        found = run_phases(paths, parallel=2, executor=RayExecutor(cluster.address))
        assert [(r.phase, r.verdict) for r in found] == [("api-a", "done"), ("api-b", "done")]
        assert {r.executor["node"] for r in found} <= {n["NodeID"] for n in ray.nodes()}
        for result in found:
            assert lines(result.transcript)[-1]["verdict"] == "done"
            assert json.loads(Path(result.result_path).read_text())["verdict"] == "done"
        assert ray.is_initialized()  # the caller's connection: left up
    finally:
        ray.shutdown()
