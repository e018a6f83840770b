#!/usr/bin/env python3
"""Python `annoy` as the reference peer of Canopy's engine in tests.

Reads one JSON request on stdin and writes one JSON answer on stdout, so a
test can drive it with a single process call. Vectors travel as raw
little-endian float32 files (n x dim, row major), the format the TypeScript
side writes with `writeFloat32File`.

Requests:
  {"op": "build", "data": PATH, "dim": D, "metric": M, "nTrees": T,
   "seed": S, "jobs": J, "out": PATH}
      -> {"nItems", "nTrees", "buildSeconds"}
  {"op": "query", "index": PATH, "dim": D, "metric": M, "k": K,
   "searchKs": [..], "queries": PATH?, "byItem": [ids]?,
   "itemVectors": [ids]?, "distancePairs": [[i, j]]?}
      -> {"nItems", "nTrees",
          "byVector": [{"searchK", "results": [{"ids", "distances"}]}],
          "byItem":   [{"searchK", "results": [...]}],
          "itemVectors": [[..]], "distances": [..]}

search_k -1 means Annoy's default (n * number of trees).
"""
import json
import sys
import time

import numpy as np
from annoy import AnnoyIndex


def read_matrix(path, dim):
    flat = np.fromfile(path, dtype="<f4")
    if flat.size % dim != 0:
        raise ValueError(f"{path}: {flat.size} floats is not a multiple of dim {dim}")
    return flat.reshape(-1, dim)


def build(req):
    data = read_matrix(req["data"], req["dim"])
    index = AnnoyIndex(req["dim"], req["metric"])
    # Annoy's Python binding takes the seed as a C int.
    index.set_seed(int(req["seed"]))
    for i, row in enumerate(data.tolist()):
        index.add_item(i, row)
    started = time.perf_counter()
    index.build(int(req["nTrees"]), n_jobs=int(req.get("jobs", 1)))
    seconds = time.perf_counter() - started
    index.save(req["out"])
    return {"nItems": index.get_n_items(), "nTrees": index.get_n_trees(), "buildSeconds": seconds}


def answer(ids_and_distances):
    ids, distances = ids_and_distances
    return {"ids": ids, "distances": distances}


def query(req):
    dim, k = req["dim"], int(req["k"])
    index = AnnoyIndex(dim, req["metric"])
    index.load(req["index"])
    search_ks = req.get("searchKs", [-1])
    out = {"nItems": index.get_n_items(), "nTrees": index.get_n_trees()}

    if req.get("queries"):
        queries = read_matrix(req["queries"], dim).tolist()
        out["byVector"] = [
            {
                "searchK": sk,
                "results": [answer(index.get_nns_by_vector(q, k, search_k=sk, include_distances=True)) for q in queries],
            }
            for sk in search_ks
        ]
    items = req.get("byItem", [])
    out["byItem"] = [
        {
            "searchK": sk,
            "results": [answer(index.get_nns_by_item(i, k, search_k=sk, include_distances=True)) for i in items],
        }
        for sk in search_ks
    ]
    out["itemVectors"] = [index.get_item_vector(i) for i in req.get("itemVectors", [])]
    out["distances"] = [index.get_distance(i, j) for i, j in req.get("distancePairs", [])]
    return out


OPS = {"build": build, "query": query}


def main():
    req = json.load(sys.stdin)
    op = OPS.get(req.get("op"))
    if op is None:
        raise ValueError(f"unknown op {req.get('op')!r}; expected one of {sorted(OPS)}")
    json.dump(op(req), sys.stdout)


if __name__ == "__main__":
    main()
