"""Cluster index module (CIM) golden model: the cluster tree of seed 001 Fig. 4a, bit-exact with
``hdl.cim.ClusterIndexModule`` including its capacity behaviour (DESIGN §3 step 2, §4 CIM).

The tree has a root and ``l`` layers below it. Memory ``j`` (j = 0 .. l-1) maps (parent node at
depth j, hash value h_j) to a child at depth j+1; the root is the only node at depth 0 and the
children of the last layer are leaves whose number *is* the cluster index. Nodes of every layer
and cluster indices are allocated linearly (0, 1, 2, ...) in the order tokens first need them,
so indices follow the first appearance of each distinct code, 0-based.

Capacity: depth j (1 <= j <= l-1) holds at most ``min(nodes_per_layer, 2**(hash_width*j))``
nodes, the leaf layer at most ``k_max`` clusters, and a run at most ``n_max`` tokens.
A token that would need a node or cluster beyond capacity (or that comes after ``n_max``
tokens) gets the sentinel index ``k_max`` ("no cluster"; it indexes past any k-row
table, so it cannot be used silently) and sets the sticky ``overflow`` flag. Nodes it allocated
at shallower depths before running out stay allocated (as in the RTL); nothing else is written.
"""

from __future__ import annotations

import numpy as np

from .fixed import QFormat, check_in_range

__all__ = ["hash_format", "layer_capacities", "cluster_index", "skew_lanes"]


def hash_format(hash_width: int) -> QFormat:
    """Hash values are signed integers of ``hash_width`` bits."""
    return QFormat(hash_width, 0, signed=True)


def layer_capacities(l: int, hash_width: int, k_max: int, nodes_per_layer: int = 0) -> list[int]:
    """Entries memory j can allocate: nodes at depth j+1 for j < l-1, clusters for j = l-1
    (``nodes_per_layer`` 0: k_max)."""
    nodes = nodes_per_layer or k_max
    caps = [min(nodes, 1 << (hash_width * (j + 1))) for j in range(l - 1)]
    return caps + [k_max]


def cluster_index(
    hash_codes: np.ndarray,
    *,
    k_max: int,
    hash_width: int,
    nodes_per_layer: int = 0,
    n_max: int | None = None,
) -> tuple[np.ndarray, int, bool]:
    """Cluster index per token of ``hash_codes`` (n × l raw signed ints, token order).

    Returns ``(indices, n_clusters, overflow)``: ``indices`` (n,) int64 in [0, k_max),
    or ``k_max`` for tokens that found no room; ``n_clusters`` the clusters allocated;
    ``overflow`` True when any token was refused (sticky over the run).
    """
    codes = np.asarray(hash_codes)
    if codes.ndim != 2 or codes.shape[1] < 1:
        raise ValueError(f"hash_codes must be 2-D (n × l) with l >= 1, got shape {codes.shape}")
    if not isinstance(k_max, int) or k_max < 1:
        raise ValueError(f"k_max must be an integer >= 1, not {k_max!r}")
    if isinstance(nodes_per_layer, bool) or not isinstance(nodes_per_layer, int) or nodes_per_layer < 0:
        raise ValueError(f"nodes_per_layer must be an integer >= 0 (0: k_max), not {nodes_per_layer!r}")
    codes = check_in_range(codes, hash_format(hash_width), "hash_codes")
    n, l = codes.shape
    limit = n if n_max is None else n_max
    caps = layer_capacities(l, hash_width, k_max, nodes_per_layer)
    tables: list[dict[tuple[int, int], int]] = [{} for _ in range(l)]
    counts = [0] * l
    indices = np.full(n, k_max, dtype=np.int64)
    overflow = False
    for t in range(n):
        if t >= limit:
            overflow = True
            continue
        parent = 0
        for j in range(l):
            key = (parent, int(codes[t, j]))
            child = tables[j].get(key)
            if child is None:
                if counts[j] >= caps[j]:
                    overflow = True
                    break
                child = counts[j]
                tables[j][key] = child
                counts[j] += 1
            parent = child
        else:
            indices[t] = parent
    return indices, counts[l - 1], overflow


def skew_lanes(hash_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CIM input order (as the systolic array emits hash values): beat t, lane j carries layer
    j of token t-j. Returns ``(hashes (n+l-1) × l, lane_valid (n+l-1) × l bool)``; idle lanes 0."""
    codes = np.asarray(hash_codes, dtype=np.int64)
    n, l = codes.shape
    beats = n + l - 1 if n else 0
    hashes = np.zeros((beats, l), dtype=np.int64)
    valid = np.zeros((beats, l), dtype=bool)
    for j in range(l):
        hashes[j:j + n, j] = codes[:, j]
        valid[j:j + n, j] = True
    return hashes, valid
