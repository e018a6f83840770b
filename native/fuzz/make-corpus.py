"""Writes the fuzzers' seed corpora under native/fuzz/corpus/ (deterministic; rerun to refresh).

load/: one small valid Annoy file per metric, built by pip's `annoy`, prefixed with the two bytes
load_fuzzer.cc reads first (metric, dim - 1). query/: a few well-formed queries for query_fuzzer.cc.
"""
import os
import random
import struct
import tempfile

from annoy import AnnoyIndex

METRICS = ["angular", "euclidean", "manhattan", "dot", "hamming"]  # order of canopy::MetricKind
HERE = os.path.dirname(os.path.abspath(__file__))


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def annoy_file(metric, dim, items, trees, rng):
    index = AnnoyIndex(dim, metric)
    for i in range(items):
        if metric == "hamming":
            index.add_item(i, [rng.randint(0, 1) for _ in range(dim)])
        else:
            index.add_item(i, [rng.uniform(-1, 1) for _ in range(dim)])
    index.set_seed(1)
    index.build(trees, n_jobs=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.ann")
        index.save(path)
        index.unload()
        with open(path, "rb") as f:
            return f.read()


def main():
    rng = random.Random(5)
    for m, metric in enumerate(METRICS):
        for dim, items, trees in [(3, 12, 2), (8, 40, 3)]:
            data = annoy_file(metric, dim, items, trees, rng)
            write(os.path.join(HERE, "corpus", "load", f"{metric}-d{dim}.bin"), bytes([m, dim - 1]) + data)
    for m in range(len(METRICS)):
        for k, search_k in [(10, -1), (1, 5), (300, 100000)]:
            floats = [rng.uniform(-2, 2) for _ in range(24)]
            data = struct.pack("<BIqi", m, k, search_k, 3) + struct.pack("<24f", *floats)
            write(os.path.join(HERE, "corpus", "query", f"m{m}-k{k}.bin"), data)


if __name__ == "__main__":
    main()
