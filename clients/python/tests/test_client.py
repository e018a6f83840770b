"""CanopyClient against a real cluster (tests/conftest.py): numpy in and out, batches, search by item,
Annoy's method names, deadlines, retries while a node comes up, errors that are not retried, TLS/mTLS."""
from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from canopy import CanopyClient, TlsOptions
from conftest import Cluster, brute_force, free_port, wait_serving


def test_search_takes_numpy_and_returns_numpy(cluster: Cluster) -> None:
    with CanopyClient(cluster.router, "tracks") as client:
        query = cluster.vectors[5].astype(np.float64)  # any float dtype goes out as float32
        result = client.search(query, k=10, search_k=20_000, exact=True)
        assert result.ids.dtype == object and result.distances.dtype == np.float32
        assert result.ids[0] == "track:5" and result.distances[0] == 0
        assert result.version == "v1" and result.shards_answered == result.shards_total == 2
        exact = [cluster.ids[i] for i in brute_force(cluster.vectors, cluster.vectors[5], 10)]
        assert list(result.ids) == exact  # a search_k this large inspects everything, and exact scores it all exactly
        assert np.all(np.diff(result.distances) >= 0)


def test_sidecar_options_and_status(cluster: Cluster) -> None:
    with CanopyClient(cluster.router, "tracks") as client:
        info = client.describe()
        assert sorted((s.shard, s.kind, s.state) for s in info.sidecars) == [(0, "codes", "loaded"), (0, "graph", "loaded"), (1, "codes", "loaded"), (1, "graph", "loaded")]
        assert all(s.reason == "" and s.replica.startswith("127.0.0.1:") for s in info.sidecars)
        query = cluster.vectors[11]
        truth = [cluster.ids[i] for i in brute_force(cluster.vectors, query, 10)]
        batch = client.batch_search(cluster.vectors[10:12], k=10, search_k=20_000, exact=True)
        assert list(batch.ids[1]) == truth
        for result in (client.search(query, k=10, ef=40), client.search(query, k=10, rerank=50), client.search_by_item("track:11", k=10, ef=40)):
            assert result.ids[0] == "track:11" and result.distances[0] == 0 and len(result.ids) == 10
        with pytest.raises(grpc.RpcError) as raised:
            client.search(query, ef=-1)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "ef must be 0 (default) or positive, got -1" in raised.value.details()


def test_batch_search_of_a_2d_array(cluster: Cluster) -> None:
    with CanopyClient(cluster.router, "tracks") as client:
        result = client.batch_search(cluster.vectors[:20], k=5)
        assert result.ids.shape == (20, 5) and result.distances.shape == (20, 5)
        assert list(result.ids[:, 0]) == cluster.ids[:20]
        assert np.all(result.counts == 5) and np.all(result.distances[:, 0] == 0)
        with pytest.raises(ValueError, match="2-D"):
            client.batch_search(cluster.vectors[0])


def test_search_by_item_and_stored_vectors(cluster: Cluster) -> None:
    with CanopyClient(cluster.router, "tracks") as client:
        result = client.search_by_item("track:7", k=3, exclude_ids=["track:7"])
        assert "track:7" not in result.ids and len(result.ids) == 3
        np.testing.assert_array_equal(client.get_item("track:7"), cluster.vectors[7])
        info = client.describe()
        assert (info.metric, info.dim, info.items, info.shard_count, info.active_version) == ("euclidean", 16, 2_000, 2, "v1")


def test_annoy_method_names(cluster: Cluster) -> None:
    with CanopyClient(cluster.router, "tracks") as client:
        ids = client.get_nns_by_vector(cluster.vectors[3].tolist(), 4)
        assert isinstance(ids, list) and ids[0] == "track:3" and len(ids) == 4
        ids, distances = client.get_nns_by_item("track:3", 4, search_k=-1, include_distances=True)
        assert ids[0] == "track:3" and distances[0] == 0 and len(distances) == 4
        assert client.get_item_vector("track:3") == pytest.approx(cluster.vectors[3].tolist())


def test_bad_requests_fail_at_once_without_retries(cluster: Cluster) -> None:
    with CanopyClient(cluster.router, "tracks", attempts=5, backoff_s=1.0, max_backoff_s=1.0) as client:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            client.search(np.zeros(3, dtype=np.float32))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "dimension" in raised.value.details()
        assert time.monotonic() - started < 1.0  # not retried: a 1 s backoff would show
        with pytest.raises(grpc.RpcError) as missing:
            client.search_by_item("no-such-id")
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(ValueError, match="1-D"):
            client.search(cluster.vectors[:2])


def test_deadline_is_enforced(cluster: Cluster) -> None:
    with CanopyClient(cluster.router, "tracks") as client:
        with pytest.raises(grpc.RpcError) as raised:
            client.batch_search(np.tile(cluster.vectors, (1, 1))[:1000], k=100, search_k=1_000_000, deadline_s=0.001)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_retries_unavailable_until_a_node_comes_up(cluster: Cluster) -> None:
    port = free_port()
    starter = threading.Timer(0.5, lambda: cluster.start_shard(0, port))
    starter.start()
    try:
        with CanopyClient(f"127.0.0.1:{port}", "tracks", deadline_s=30, attempts=200, backoff_s=0.05, max_backoff_s=0.25) as client:
            first_id = (cluster.version_dir / "shard-0000.ids").read_text().split("\n")[0]
            result = client.search_by_item(first_id, k=1)
        assert result.ids[0] == first_id
    finally:
        starter.join()


def test_retries_resource_exhausted_from_a_busy_node(cluster: Cluster) -> None:
    # A node that takes one query at a time refuses the others with RESOURCE_EXHAUSTED.
    port = free_port()
    wait_serving(f"127.0.0.1:{port}", cluster.start_shard(0, port, ["--max-inflight-queries", "1"]))
    queries = cluster.vectors[:200]

    def hammer(attempts: int) -> list:
        outcomes: list = []
        with CanopyClient(f"127.0.0.1:{port}", "tracks", deadline_s=30, attempts=attempts, backoff_s=0.002, max_backoff_s=0.05) as client:
            def worker() -> None:
                for _ in range(5):
                    try:
                        client.batch_search(queries, k=10, search_k=4_000)
                        outcomes.append("ok")
                    except grpc.RpcError as error:
                        outcomes.append(error.code())
            threads = [threading.Thread(target=worker) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return outcomes

    without_retries = hammer(attempts=1)
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in without_retries  # the node does refuse under this load
    assert set(without_retries) <= {"ok", grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert hammer(attempts=1_000) == ["ok"] * 30


def test_without_retries_an_absent_node_is_unavailable() -> None:
    with CanopyClient(f"127.0.0.1:{free_port()}", "tracks", attempts=1) as client:
        with pytest.raises(grpc.RpcError) as raised:
            client.search([0.0] * 16)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def _issue(ca_dir: Path, name: str) -> tuple:
    key, csr, crt, ext = (ca_dir / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    subprocess.run(["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={name}"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_dir / "ca.crt", "-CAkey", ca_dir / "ca.key", "-CAcreateserial",
                    "-out", crt, "-days", "2", "-extfile", ext], check=True, capture_output=True)
    return str(crt), str(key)


def test_mutual_tls(cluster: Cluster, tmp_path: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", tmp_path / "ca.key", "-out", tmp_path / "ca.crt", "-days", "2", "-subj", "/CN=client test CA",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                   check=True, capture_output=True)
    server_cert, server_key = _issue(tmp_path, "server")
    client_cert, client_key = _issue(tmp_path, "client")
    ca = str(tmp_path / "ca.crt")
    port = free_port()
    node = cluster.start_shard(1, port, ["--tls-cert", server_cert, "--tls-key", server_key, "--tls-ca", ca, "--tls-require-client-cert"])
    target = f"localhost:{port}"
    with open(ca, "rb") as root, open(client_key, "rb") as key, open(client_cert, "rb") as chain:
        credentials = grpc.ssl_channel_credentials(root.read(), key.read(), chain.read())
    wait_serving(target, node, credentials)
    with CanopyClient(target, "tracks", deadline_s=10, tls=TlsOptions(ca_file=ca, cert_file=client_cert, key_file=client_key)) as client:
        assert client.describe().shard_count == 2
    with CanopyClient(target, "tracks", deadline_s=3, attempts=1, tls=TlsOptions(ca_file=ca)) as anonymous:
        with pytest.raises(grpc.RpcError) as refused:
            anonymous.describe()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(ValueError, match="both cert_file and key_file"):
        CanopyClient(target, tls=TlsOptions(ca_file=ca, cert_file=client_cert))
