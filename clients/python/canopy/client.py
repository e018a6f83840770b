"""A client of Canopy's `canopy.v1.Search` service (a router or a shard node).

Vectors go out as little-endian float32 bytes (`vector_f32`), never as lists; answers come back as
numpy arrays. Every call has a deadline; calls refused with UNAVAILABLE (no replica could answer) or
RESOURCE_EXHAUSTED (a shard's queue is full) are retried with exponential backoff and full jitter
while the deadline allows. Other errors are raised at once as `grpc.RpcError`.

A client is safe to share between threads (its channel is); close it, or use it as a context manager.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

import grpc
import numpy as np
import numpy.typing as npt

from canopy.v1 import canopy_pb2, canopy_pb2_grpc

DEFAULT_DEADLINE_S = 2.0
DEFAULT_ATTEMPTS = 4
DEFAULT_BACKOFF_S = 0.05
DEFAULT_MAX_BACKOFF_S = 1.0
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})

VectorLike = Union[npt.ArrayLike, Sequence[float]]
Reply = TypeVar("Reply")
#: Annoy's answer shape: ids, or (ids, distances) with include_distances.
AnnoyAnswer = Union[List[str], Tuple[List[str], List[float]]]


@dataclass(frozen=True)
class SearchResult:
    """One query's answer, closest first (for `dot`, the largest inner product first)."""

    ids: npt.NDArray[np.object_]
    distances: npt.NDArray[np.float32]
    #: The index version that answered; a query never mixes versions.
    version: str
    shards_answered: int
    shards_total: int


@dataclass(frozen=True)
class BatchResult:
    """Answers of a 2-D batch, one row per query. Rows with fewer than k answers are padded with
    `None` ids and NaN distances; `counts[i]` says how many of row i are real."""

    ids: npt.NDArray[np.object_]
    distances: npt.NDArray[np.float32]
    counts: npt.NDArray[np.int64]
    version: str


@dataclass(frozen=True)
class SidecarStatus:
    """Whether a shard searches with one of its sidecars (`kind`: codes or graph). `state` is loaded,
    absent (the version has none), missing or refused (`reason` says why; the shard then searches
    without it: the forest alone, exact, for codes; no graph search for `ef`). `replica` names the
    replica when a router answers."""

    shard: int
    kind: str
    state: str
    reason: str
    replica: str


@dataclass(frozen=True)
class IndexInfo:
    index: str
    metric: str
    dim: int
    items: int
    n_trees: int
    shard_count: int
    active_version: str
    sidecars: Tuple[SidecarStatus, ...] = ()


@dataclass(frozen=True)
class TlsOptions:
    """TLS towards the server: `ca_file` verifies it (default: the system roots); `cert_file` and
    `key_file` present a client certificate (mutual TLS); `server_name` overrides the name checked."""

    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    server_name: Optional[str] = None


class CanopyClient:
    """Client of one router (or shard node) at `target` ("host:port").

    `index` is the default index of every call. `deadline_s` bounds each call, retries included.
    `attempts` is the most tries of a retryable call; backoff starts at `backoff_s` and doubles up to
    `max_backoff_s`. `tls` switches to TLS (plaintext otherwise).
    """

    def __init__(
        self,
        target: str,
        index: str = "",
        *,
        deadline_s: float = DEFAULT_DEADLINE_S,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff_s: float = DEFAULT_BACKOFF_S,
        max_backoff_s: float = DEFAULT_MAX_BACKOFF_S,
        tls: Optional[TlsOptions] = None,
        max_message_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        if deadline_s <= 0 or attempts < 1 or backoff_s < 0 or max_backoff_s < backoff_s:
            raise ValueError("deadline_s > 0, attempts >= 1 and 0 <= backoff_s <= max_backoff_s are required")
        self.index = index
        self.deadline_s = deadline_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        options = [("grpc.max_receive_message_length", max_message_bytes), ("grpc.max_send_message_length", max_message_bytes)]
        if tls is None:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            if tls.server_name is not None:
                options.append(("grpc.ssl_target_name_override", tls.server_name))
            self._channel = grpc.secure_channel(target, _credentials(tls), options=options)
        self._stub = canopy_pb2_grpc.SearchStub(self._channel)

    def __enter__(self) -> "CanopyClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    # --- searches -----------------------------------------------------------------------------

    def search(
        self,
        vector: VectorLike,
        k: int = 10,
        *,
        search_k: int = -1,
        exclude_ids: Sequence[str] = (),
        index: Optional[str] = None,
        deadline_s: Optional[float] = None,
        exact: bool = False,
        rerank: int = 0,
        ef: int = 0,
    ) -> SearchResult:
        """The k nearest items to one vector (1-D, any float dtype).

        `exact` searches each shard's forest alone, as Annoy (the same answers), even where it has codes;
        `rerank` (with codes) is how many candidates get exact distances, 0 for the default (2k, at least
        10); `ef` is the beam width of a search over each shard's neighbour graph, 0 for none."""
        request = self._search_request(_as_row(vector), k, search_k, exclude_ids, index, _options(exact, rerank, ef))
        return _result(self._call(self._stub.Search, request, deadline_s))

    def batch_search(
        self,
        vectors: npt.ArrayLike,
        k: int = 10,
        *,
        search_k: int = -1,
        index: Optional[str] = None,
        deadline_s: Optional[float] = None,
        exact: bool = False,
        rerank: int = 0,
        ef: int = 0,
    ) -> BatchResult:
        """The k nearest items to each row of a 2-D array, in one call (options as `search`)."""
        matrix = np.ascontiguousarray(vectors, dtype="<f4")
        if matrix.ndim != 2:
            raise ValueError(f"batch_search takes a 2-D array (queries x dim), got shape {matrix.shape}")
        name = self.index if index is None else index
        options = _options(exact, rerank, ef)
        queries = [self._search_request(row, k, search_k, (), "", options) for row in matrix]
        reply = self._call(self._stub.BatchSearch, canopy_pb2.BatchSearchRequest(index=name, queries=queries), deadline_s)
        ids = np.full((len(queries), k), None, dtype=object)
        distances = np.full((len(queries), k), np.nan, dtype=np.float32)
        counts = np.zeros(len(queries), dtype=np.int64)
        for i, answer in enumerate(reply.results):
            n = len(answer.neighbors)
            counts[i] = n
            ids[i, :n] = [neighbor.id for neighbor in answer.neighbors]
            distances[i, :n] = [neighbor.distance for neighbor in answer.neighbors]
        return BatchResult(ids=ids, distances=distances, counts=counts, version=reply.index_version)

    def search_by_item(
        self,
        item_id: str,
        k: int = 10,
        *,
        search_k: int = -1,
        exclude_ids: Sequence[str] = (),
        index: Optional[str] = None,
        deadline_s: Optional[float] = None,
        exact: bool = False,
        rerank: int = 0,
        ef: int = 0,
    ) -> SearchResult:
        """The k nearest items to a stored item, itself included (at distance 0) unless excluded (options as `search`)."""
        request = canopy_pb2.SearchByItemRequest(
            index=self.index if index is None else index, id=item_id, k=k, search_k=search_k, exclude_ids=list(exclude_ids),
            **_options(exact, rerank, ef),
        )
        return _result(self._call(self._stub.SearchByItem, request, deadline_s))

    def get_item(self, item_id: str, *, index: Optional[str] = None, deadline_s: Optional[float] = None) -> npt.NDArray[np.float32]:
        """The stored vector of an item."""
        request = canopy_pb2.GetItemRequest(index=self.index if index is None else index, id=item_id)
        reply = self._call(self._stub.GetItem, request, deadline_s)
        return np.frombuffer(reply.vector_f32, dtype="<f4").copy()

    def describe(self, index: Optional[str] = None, *, deadline_s: Optional[float] = None) -> IndexInfo:
        reply = self._call(self._stub.DescribeIndex, canopy_pb2.DescribeIndexRequest(index=self.index if index is None else index), deadline_s)
        sidecars = tuple(
            SidecarStatus(shard=shard.shard, kind=s.kind, state=s.state, reason=s.reason, replica=s.replica)
            for shard in reply.shards
            for s in shard.sidecars
        )
        return IndexInfo(
            index=reply.index, metric=reply.metric, dim=reply.dim, items=reply.items, n_trees=reply.n_trees,
            shard_count=reply.shard_count, active_version=reply.active_version, sidecars=sidecars,
        )

    # --- Annoy's names ------------------------------------------------------------------------

    def get_nns_by_vector(self, vector: VectorLike, n: int, search_k: int = -1, include_distances: bool = False) -> AnnoyAnswer:
        """As Annoy's: the ids of the n nearest items, and with `include_distances` also their distances,
        as (ids, distances). Ids are the index's string ids, not item numbers."""
        return _annoy_style(self.search(vector, n, search_k=search_k), include_distances)

    def get_nns_by_item(self, item_id: str, n: int, search_k: int = -1, include_distances: bool = False) -> AnnoyAnswer:
        """As Annoy's, for a stored item (given by its id)."""
        return _annoy_style(self.search_by_item(item_id, n, search_k=search_k), include_distances)

    def get_item_vector(self, item_id: str) -> List[float]:
        """As Annoy's: the stored vector as a list of floats."""
        return self.get_item(item_id).tolist()

    # --- plumbing -----------------------------------------------------------------------------

    def _search_request(
        self, row: npt.NDArray[np.float32], k: int, search_k: int, exclude_ids: Sequence[str], index: Optional[str], options: Dict[str, Union[bool, int]]
    ) -> canopy_pb2.SearchRequest:
        return canopy_pb2.SearchRequest(
            index=self.index if index is None else index, vector_f32=row.tobytes(), k=k, search_k=search_k, exclude_ids=list(exclude_ids), **options
        )

    def _call(self, method: Callable[..., Reply], request: object, deadline_s: Optional[float]) -> Reply:
        """Calls `method`, retrying UNAVAILABLE and RESOURCE_EXHAUSTED with backoff until the deadline."""
        end = time.monotonic() + (self.deadline_s if deadline_s is None else deadline_s)
        backoff = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            left = end - time.monotonic()
            try:
                return method(request, timeout=max(left, 0.001))
            except grpc.RpcError as error:
                code = error.code()  # type: ignore[attr-defined]
                pause = random.uniform(0, backoff)
                if code not in RETRYABLE or attempt == self.attempts or time.monotonic() + pause >= end:
                    raise
                time.sleep(pause)
                backoff = min(backoff * 2, self.max_backoff_s)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _options(exact: bool, rerank: int, ef: int) -> Dict[str, Union[bool, int]]:
    """The sidecar search options of a request; the servers check their bounds (INVALID_ARGUMENT)."""
    return {"exact": exact, "rerank": rerank, "ef": ef}


def _credentials(tls: TlsOptions) -> grpc.ChannelCredentials:
    def read(path: Optional[str]) -> Optional[bytes]:
        if path is None:
            return None
        with open(path, "rb") as f:
            return f.read()

    if (tls.cert_file is None) != (tls.key_file is None):
        raise ValueError("mutual TLS needs both cert_file and key_file")
    return grpc.ssl_channel_credentials(root_certificates=read(tls.ca_file), private_key=read(tls.key_file), certificate_chain=read(tls.cert_file))


def _as_row(vector: VectorLike) -> npt.NDArray[np.float32]:
    row = np.ascontiguousarray(vector, dtype="<f4")
    if row.ndim != 1:
        raise ValueError(f"search takes one vector (1-D), got shape {row.shape}; use batch_search for a 2-D array")
    return row


def _result(reply: canopy_pb2.SearchResponse) -> SearchResult:
    return SearchResult(
        ids=np.array([n.id for n in reply.neighbors], dtype=object),
        distances=np.array([n.distance for n in reply.neighbors], dtype=np.float32),
        version=reply.index_version,
        shards_answered=reply.shards_answered,
        shards_total=reply.shards_total,
    )


def _annoy_style(result: SearchResult, include_distances: bool) -> AnnoyAnswer:
    ids = result.ids.tolist()
    return (ids, result.distances.tolist()) if include_distances else ids
