"""The README's daily job, end to end from Python: pandas writes Parquet, `canopy build --out s3://...`
uploads the version to a real S3 API (moto's server), `canopy publish --wait` rolls it into a cluster
driven by a real etcd, and the client queries it. Everything on loopback, stopped after the test."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict, Iterator

import boto3  # installed with moto
import numpy as np
import pandas as pd
import pytest

from canopy import CanopyClient
from conftest import CANOPY, Processes, free_port, wait_listening

BUCKET = "ml-indexes"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Dict[str, str]]:
    processes = Processes()
    children = []
    try:
        s3_port, etcd_port, peer_port = free_port(), free_port(), free_port()
        moto = subprocess.Popen(["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(moto)
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
        etcd = subprocess.Popen(["etcd", "--name", "t", "--data-dir", str(tmp_path / "etcd"), "--listen-client-urls", etcd_url,
                                 "--advertise-client-urls", etcd_url, "--listen-peer-urls", peer_url,
                                 "--initial-advertise-peer-urls", peer_url, "--initial-cluster", f"t={peer_url}", "--log-level", "error"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(etcd)
        wait_listening(s3_port, moto)
        wait_listening(etcd_port, etcd)
        endpoint = f"http://127.0.0.1:{s3_port}"
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1", AWS_ENDPOINT_URL_S3=endpoint)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        shard_port, router_port = free_port(), free_port()
        processes.start(["serve", "shard", "--etcd", etcd_url, "--index", "tracks", "--shard", "0", "--listen", f"127.0.0.1:{shard_port}",
                         "--cache-dir", str(tmp_path / "cache")])
        router = processes.start(["serve", "router", "--etcd", etcd_url, "--listen", f"127.0.0.1:{router_port}"])
        wait_listening(router_port, router)
        yield {"etcd": etcd_url, "router": f"127.0.0.1:{router_port}"}
    finally:
        processes.stop_all()
        for child in children:
            child.terminate()
            child.wait(timeout=15)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL_S3"):
            os.environ.pop(name, None)


def test_daily_job(services: Dict[str, str], tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    embeddings = rng.standard_normal((1_000, 64)).astype(np.float32)
    ids = [f"track:{i}" for i in range(1_000)]

    parquet = tmp_path / "tracks.parquet"
    pd.DataFrame({"id": ids, "vector": list(embeddings)}).to_parquet(parquet, row_group_size=300)
    version = subprocess.run(
        [*CANOPY, "build", "--input", str(parquet), "--format", "parquet", "--metric", "angular",
         "--trees", "10", "--index", "tracks", "--out", f"s3://{BUCKET}/tracks"],
        check=True, capture_output=True, text=True).stdout.strip()
    assert version.startswith(f"s3://{BUCKET}/tracks/")
    subprocess.run([*CANOPY, "publish", "--etcd", services["etcd"], "--manifest", version, "--wait", "--timeout", "60"],
                   check=True, capture_output=True)

    with CanopyClient(services["router"], "tracks", deadline_s=10) as client:
        assert client.get_nns_by_item("track:123", 10)[0] == "track:123"
        found, distances = client.get_nns_by_vector(embeddings[0], 10, include_distances=True)
        assert found[0] == "track:0" and distances[0] == pytest.approx(0, abs=1e-3)
        assert client.describe().active_version == version.rsplit("/", 1)[1]
