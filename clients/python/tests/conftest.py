"""A real Canopy cluster for the client's tests: `canopy build` of a numpy matrix with string ids
(.npy + --ids), two shard nodes and a router as real processes on loopback, stopped after the session.
Needs the repository's dist/ built (`npm run build`) and Node.js on PATH."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Sequence

import grpc
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
CANOPY = ["node", str(REPO / "bin" / "canopy.js")]
ROWS, DIM = 2_000, 16
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def canopy(args: Sequence[str]) -> str:
    done = subprocess.run([*CANOPY, *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"canopy {' '.join(args)} failed: {done.stderr}")
    return done.stdout


class Processes:
    """Every serving process a test starts; all are stopped at the end, even after a failure."""

    def __init__(self) -> None:
        self.children: List[subprocess.Popen] = []

    def start(self, args: Sequence[str]) -> subprocess.Popen:
        child = subprocess.Popen([*CANOPY, *args, "--log-level", "warn"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def wait_listening(port: int, child: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"process exited: {child.stderr.read().decode() if child.stderr else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {START_TIMEOUT_S} s")


# grpc.health.v1 Check of "canopy.v1.Search", encoded by hand (one string field) so the tests need no
# health stubs; the reply of a process that can answer queries is `status: SERVING` (field 1, value 1).
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"
_SEARCH_HEALTH_REQUEST = b"\x0a\x10canopy.v1.Search"
_SERVING_REPLY = b"\x08\x01"


def wait_serving(target: str, child: subprocess.Popen, credentials: "grpc.ChannelCredentials | None" = None) -> None:
    """Polls health until the process can answer queries: a shard node binds its port before it has
    loaded its index, so a listening port is not yet a serving one."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"process exited: {child.stderr.read().decode() if child.stderr else ''}")
        channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
        with channel:
            try:
                if channel.unary_unary(_HEALTH_CHECK)(_SEARCH_HEALTH_REQUEST, timeout=1.0) == _SERVING_REPLY:
                    return
            except grpc.RpcError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"{target} is not SERVING after {START_TIMEOUT_S} s")


@dataclass
class Cluster:
    router: str
    version_dir: Path
    vectors: np.ndarray
    ids: List[str]
    processes: Processes

    def start_shard(self, shard: int, port: int, extra: Sequence[str] = ()) -> subprocess.Popen:
        return self.processes.start(
            ["serve", "shard", "--manifest", str(self.version_dir), "--shard", str(shard), "--listen", f"127.0.0.1:{port}", *extra]
        )


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("cluster")
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    ids = [f"track:{i}" for i in range(ROWS)]
    np.save(work / "items.npy", vectors)
    np.save(work / "ids.npy", np.array(ids))
    out = canopy([
        "build", "--input", str(work / "items.npy"), "--format", "npy", "--ids", str(work / "ids.npy"),
        "--metric", "euclidean", "--trees", "10", "--shards", "2", "--index", "tracks", "--version", "v1",
        "--out", str(work / "versions"), "--graph",
    ])
    processes = Processes()
    try:
        cluster = Cluster(router="", version_dir=Path(out.strip()), vectors=vectors, ids=ids, processes=processes)
        backends = []
        for shard in (0, 1):
            port = free_port()
            wait_serving(f"127.0.0.1:{port}", cluster.start_shard(shard, port))
            backends += ["--backend", f"{shard}=127.0.0.1:{port}"]
        router_port = free_port()
        wait_listening(router_port, processes.start(["serve", "router", "--listen", f"127.0.0.1:{router_port}", *backends]))
        cluster.router = f"127.0.0.1:{router_port}"
        yield cluster
    finally:
        processes.stop_all()


def brute_force(vectors: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(((vectors - query) ** 2).sum(axis=1), kind="stable")[:k]


def pytest_report_header() -> str:
    return f"canopy client tests against {REPO} (python {sys.version.split()[0]}, node {os.environ.get('NODE_VERSION', 'on PATH')})"
