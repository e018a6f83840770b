#!/usr/bin/env python3
"""Python `annoy` as the reference peer of Canopy's engine in tests.

Reads one JSON request on stdin and writes one JSON answer on stdout, so a
test can drive it with a single process call. Vectors travel as raw
little-endian float32 files (n x dim, row major), the format the TypeScript
side writes with `writeFloat32File`.

Requests:
  {"op": "build", "data": PATH, "dim": D, "metric": M, "nTrees": T,
   "seed": S, "jobs": J, "out": PATH, "ids": [..]?}
      (row r is added as item ids[r], default r: other ids stay holes)
      -> {"nItems", "nTrees", "buildSeconds"}
  {"op": "query", "index": PATH, "dim": D, "metric": M, "k": K,
   "searchKs": [..], "queries": PATH?, "byItem": [ids]?,
   "itemVectors": [ids]?, "distancePairs": [[i, j]]?}
      -> {"nItems", "nTrees",
          "byVector": [{"searchK", "results": [{"ids", "distances"}]}],
          "byItem":   [{"searchK", "results": [...]}],
          "itemVectors": [[..]], "distances": [..]}

  {"op": "legacy", "index": PATH, "dim": D, "out": PATH}
      -> {"nodes", "roots"}: rewrites an angular index in the layout of
         Annoy's old writer (the one that produced its test/test.tree)

search_k -1 means Annoy's default (n * number of trees).
"""
import json
import struct
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
    ids = req.get("ids") or range(len(data))
    for i, row in zip(ids, data.tolist()):
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


def root_ids(n_desc):
    """Roots as Annoy's loader finds them: the trailing run of nodes whose
    n_descendants equals the last node's, minus the original root of the last
    tree when it sits right before the copies."""
    m = n_desc[-1]
    roots = []
    for i in range(len(n_desc) - 1, -1, -1):
        if n_desc[i] != m:
            break
        roots.append(i)
    return m, roots


def legacy(req):
    """Old-writer layout: item nodes with norm 0 (not cached), then each tree in
    pre-order (root first, then its children's subtrees), then root copies."""
    dim = req["dim"]
    size, leaf_max = 12 + 4 * dim, dim + 2  # angular node size and K
    with open(req["index"], "rb") as f:
        raw = f.read()
    nodes = [bytearray(raw[i : i + size]) for i in range(0, len(raw), size)]
    n_desc = [struct.unpack_from("<i", node, 0)[0] for node in nodes]
    n_items, roots = root_ids(n_desc)
    copies = sorted(roots)
    if len(copies) > 1 and nodes[copies[0]][4:8] == nodes[copies[-1]][4:8]:
        copies = copies[1:]  # the original root just before the copies
    out = []
    for i in range(n_items):
        item = bytearray(nodes[i])
        if n_desc[i] == 1:
            struct.pack_into("<f", item, 4, 0.0)
        out.append(item)

    def emit(old, is_root):
        node = bytearray(nodes[old])
        at = len(out)
        out.append(node)
        if is_root or n_desc[old] > leaf_max:  # a split: renumber non-item children
            for offset in (4, 8):
                child = struct.unpack_from("<i", node, offset)[0]
                if child >= n_items:
                    struct.pack_into("<i", node, offset, emit(child, False))
        return at

    new_roots = [emit(r, True) for r in copies]
    out.extend(bytearray(out[r]) for r in new_roots)
    with open(req["out"], "wb") as f:
        f.write(b"".join(out))
    return {"nodes": len(out), "roots": len(new_roots)}


OPS = {"build": build, "query": query, "legacy": legacy}


def main():
    req = json.load(sys.stdin)
    op = OPS.get(req.get("op"))
    if op is None:
        raise ValueError(f"unknown op {req.get('op')!r}; expected one of {sorted(OPS)}")
    json.dump(op(req), sys.stdout)


if __name__ == "__main__":
    main()
