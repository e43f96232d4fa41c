"""Packed geometry: a network's node and bond arrays as binary in its TOML file.

Large networks (10^5 nodes) written as one inline table per node and bond are 23 MB of TOML that
takes ~9 s to parse and as long again to validate item by item. The packed form keeps the file
one self-contained TOML text (the run store records it whole, as for any network) but holds the
arrays as little-endian binary in base64 *literal* strings, which TOML parses without escapes:

    [geometry.packed]
    node_ids = '...'   # int32, N
    x = '...'          # float64, N x dim (row-major), metres
    fixed = '...'      # uint8, N (1: support)
    bonds = '...'      # int32, B x 2 node ids (the bond points from the first to the second)
    k = '...'          # optional float64, B: per-bond k_init, k_min, k_max override the model
    k_min = '...'
    k_max = '...'
    board = '...'      # optional int32, B: owning board id (-1: by the implicit rule)

Binary floats are exact (no decimal round trip). Validation here is vectorised and names the
first offending item as the item-by-item parser would (``geometry.packed.bonds[17]``).
The schema module owns the format (docs/network-format.md); this module is its packed half.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

FIELDS = {  # name -> (dtype, required)
    "node_ids": ("<i4", True),
    "x": ("<f8", True),
    "fixed": ("u1", True),
    "bonds": ("<i4", True),
    "k": ("<f8", False),
    "k_min": ("<f8", False),
    "k_max": ("<f8", False),
    "board": ("<i4", False),
}
PACK_AT_NODES = 2000  # generators pack networks with more nodes than this


def encode(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def decode(ctx: Any, packed: dict[str, Any], name: str) -> np.ndarray | None:
    dtype, required = FIELDS[name]
    where = f"geometry.packed.{name}"
    v = packed.get(name)
    if v is None:
        if required:
            raise ctx.fail(where, "missing (required in a packed geometry)")
        return None
    if not isinstance(v, str):
        raise ctx.fail(where, "must be a base64 string of little-endian binary")
    try:
        raw = base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise ctx.fail(where, "not valid base64") from None
    size = np.dtype(dtype).itemsize
    if len(raw) % size:
        raise ctx.fail(where, f"{len(raw)} bytes is not a whole number of {dtype} values")
    return np.frombuffer(raw, dtype=dtype)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def parse(ctx: Any, packed: dict[str, Any], dim: int) -> dict[str, Any]:
    """Validated arrays of a packed geometry: node_ids (list), pos (N, dim), fixed (list of
    ids), bonds (B, 2 node indices), k3 ((B, 3) or None), owners (list or None)."""
    ctx.unknown_keys(packed, set(FIELDS), "geometry.packed.")
    ids = decode(ctx, packed, "node_ids")
    x = decode(ctx, packed, "x")
    fixed = decode(ctx, packed, "fixed")
    ends = decode(ctx, packed, "bonds")
    n = ids.size
    if n == 0:
        raise ctx.fail("geometry.packed.node_ids", "no nodes")
    if x.size != n * dim:
        raise ctx.fail("geometry.packed.x", f"{x.size} values, need {n} nodes x {dim}")
    if fixed.size != n:
        raise ctx.fail("geometry.packed.fixed", f"{fixed.size} flags for {n} nodes")
    if np.any(fixed > 1):
        raise ctx.fail(f"geometry.packed.fixed[{_first(fixed > 1)}]", "must be 0 or 1")
    pos = x.reshape(n, dim).astype(float)
    if not np.all(np.isfinite(pos)):
        bad = _first(~np.all(np.isfinite(pos), axis=1))
        raise ctx.fail(f"geometry.packed.x[{bad}]", "coordinates must be finite numbers (m)")
    order = np.argsort(ids, kind="stable")
    sid = ids[order]
    dup = np.flatnonzero(sid[1:] == sid[:-1])
    if dup.size:
        a, b = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
        raise ctx.fail(
            f"geometry.packed.node_ids[{b}]",
            f"duplicate node id {int(ids[b])} (also geometry.packed.node_ids[{a}])",
        )
    if ends.size % 2 or ends.size == 0:
        raise ctx.fail("geometry.packed.bonds", "need pairs of node ids, at least one bond")
    ends = ends.reshape(-1, 2)
    nb = ends.shape[0]
    at = np.searchsorted(sid, ends).clip(0, n - 1)
    unknown = sid[at] != ends
    if np.any(unknown):
        b = _first(np.any(unknown, axis=1))
        e = int(ends[b][unknown[b]][0])
        raise ctx.fail(f"geometry.packed.bonds[{b}]", f"unknown node {e}")
    idx = order[at]
    same = idx[:, 0] == idx[:, 1]
    if np.any(same):
        b = _first(same)
        node = int(ends[b, 0])
        raise ctx.fail(f"geometry.packed.bonds[{b}]", f"bond joins node {node} to itself")
    key = np.sort(idx, axis=1)
    korder = np.lexsort((key[:, 1], key[:, 0]))
    ks = key[korder]
    dup = np.flatnonzero(np.all(ks[1:] == ks[:-1], axis=1))
    if dup.size:
        a, b = sorted((int(korder[dup[0]]), int(korder[dup[0] + 1])))
        i, j = (int(v) for v in ends[b])
        raise ctx.fail(
            f"geometry.packed.bonds[{b}]",
            f"duplicate bond {i}-{j} (also geometry.packed.bonds[{a}])",
        )
    length = np.linalg.norm(pos[idx[:, 1]] - pos[idx[:, 0]], axis=1)
    if np.any(length <= 1e-12):
        b = _first(length <= 1e-12)
        i, j = (int(v) for v in ends[b])
        raise ctx.fail(f"geometry.packed.bonds[{b}]", f"zero-length bond {i}-{j} (nodes coincide)")
    per_bond = [decode(ctx, packed, k) for k in ("k", "k_min", "k_max")]
    k3 = None
    if any(a is not None for a in per_bond):
        if any(a is None for a in per_bond):
            raise ctx.fail("geometry.packed.k", "give k, k_min and k_max together (or none)")
        k3 = np.stack(per_bond, axis=1).astype(float)
        if k3.shape[0] != nb:
            raise ctx.fail("geometry.packed.k", f"{k3.shape[0]} values for {nb} bonds")
        bad = ~np.isfinite(k3).all(axis=1) | (k3 <= 0).any(axis=1)
        bad |= (k3[:, 1] > k3[:, 0]) | (k3[:, 0] > k3[:, 2])
        if np.any(bad):
            b = _first(bad)
            raise ctx.fail(
                f"geometry.packed.k[{b}]",
                f"need finite 0 < k_min <= k <= k_max, got {k3[b].tolist()}",
            )
    owners = None
    board = decode(ctx, packed, "board")
    if board is not None:
        if board.size != nb:
            raise ctx.fail("geometry.packed.board", f"{board.size} values for {nb} bonds")
        owners = [None if v < 0 else int(v) for v in board.tolist()]
    return {
        "node_ids": ids.astype(int).tolist(),
        "pos": pos,
        "fixed": ids[fixed.astype(bool)].astype(int).tolist(),
        "bonds": idx.astype(int),
        "length": length,
        "k3": k3,
        "owners": owners,
    }


def pack(
    node_ids: np.ndarray, positions: np.ndarray, fixed: np.ndarray, bond_ends: np.ndarray
) -> dict[str, str]:
    """The ``[geometry.packed]`` table of arrays (ids, metres, support flags, node-id pairs)."""
    return {
        "node_ids": encode(node_ids, "<i4"),
        "x": encode(positions, "<f8"),
        "fixed": encode(fixed, "u1"),
        "bonds": encode(bond_ends, "<i4"),
    }
