"""Generators for network files: triangular lattices and random disordered networks.

Generators produce a plain dict in the network-file layout and write it as TOML; the file is
then loaded back through the validator, so a generator can never write an invalid network.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import Delaunay

from insitu.physics.linear import Equilibrium, MechanismError, compatibility

from .packed import PACK_AT_NODES, pack
from .schema import AXES, parse_network


def _fmt(v: Any) -> str:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(round(v, 12))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_fmt(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(doc: dict[str, Any], header: str = "") -> str:
    """Write a network document (tables of scalars, arrays of inline tables)."""
    out = [f"# {line}" if line else "#" for line in header.splitlines()]
    if out:
        out.append("")
    for section in ("network", "bond_model"):
        if section in doc:
            out.append(f"[{section}]")
            out += [f"{k} = {_fmt(v)}" for k, v in doc[section].items()]
            out.append("")
    if "packed" in doc:  # binary arrays as base64 literal strings (network/packed.py)
        out.append("[geometry.packed]")
        out += [f"{k} = '{v}'" for k, v in doc["packed"].items()]
        out.append("")
    for section, arrays in (("geometry", ("nodes", "bonds")), ("hardware", ("boards",))):
        if any(a in doc for a in arrays):
            out.append(f"[{section}]")
        for arr in arrays:
            if arr in doc:
                out.append(f"{arr} = [")
                out += [f"  {_fmt(item)}," for item in doc[arr]]
                out.append("]")
                out.append("")
    for name, io in doc.get("io", {}).items():
        out.append(f"[io.{name}]")
        out += [f"{k} = {_fmt(v)}" for k, v in io.items()]
        out.append("")
    return "\n".join(out)


def assign_boards(
    n_nodes: int, pairs: list[tuple[int, int]], carries: dict[int, list[str]], family: str
) -> tuple[list[dict], list[int]]:
    """One board per node; each bond owned by the endpoint holding fewer bonds so far."""
    load = [0] * n_nodes
    owner = []
    for a, b in pairs:
        o = a if (load[a], a) <= (load[b], b) else b
        load[o] += 1
        owner.append(o)
    boards = []
    for i in range(n_nodes):
        bd: dict[str, Any] = {"id": i + 1, "node": i + 1, "family": family}
        if carries.get(i + 1):
            bd["carries"] = sorted(carries[i + 1])
        boards.append(bd)
    return boards, owner


def _document(
    name: str,
    positions: np.ndarray,
    pairs: list[tuple[int, int]],
    fixed: set[int],
    io: dict[str, dict[str, list[str]]],
    k: float,
    k_min: float,
    k_max: float,
    generator: str,
    family: str = "emu",
    relaxation_time: float = 0.05,
    packed: bool | None = None,
) -> dict[str, Any]:
    carries: dict[int, list[str]] = {}
    for spec in io.values():
        for p in spec["inputs"]:
            carries.setdefault(int(p.split(":")[0]), [])
            carries[int(p.split(":")[0])] = sorted(set(carries[int(p.split(":")[0])]) | {"force"})
        for p in spec["outputs"]:
            n = int(p.split(":")[0])
            carries[n] = sorted(set(carries.get(n, [])) | {"force", "displacement", "clamp"})
    head = {
        "name": name,
        "schema": 1,
        "dim": int(positions.shape[1]),
        "relaxation_time": relaxation_time,
        "generator": generator,
    }
    model = {"model": "spring", "k": k, "k_min": k_min, "k_max": k_max}
    if packed is None:
        packed = len(positions) > PACK_AT_NODES and family == "emu"
    if packed:
        # packed arrays and implicit boards (one emu board per node, the same ownership rule
        # as assign_boards): a 10^5-node file of 5 MB that parses in a fraction of a second
        n = len(positions)
        ids = np.arange(1, n + 1)
        flags = np.zeros(n, dtype=np.uint8)
        flags[[f - 1 for f in fixed]] = 1
        ends = np.asarray(pairs, dtype=np.int64).reshape(-1, 2) + 1
        return {"network": head, "bond_model": model,
                "packed": pack(ids, positions, flags, ends), "io": io}  # fmt: skip
    boards, owner = assign_boards(len(positions), pairs, carries, family)
    return {
        "network": head,
        "bond_model": model,
        "nodes": [
            {"id": i + 1, "x": [float(c) for c in p], **({"fixed": True} if i + 1 in fixed else {})}
            for i, p in enumerate(positions)
        ],
        "bonds": [
            {"nodes": [a + 1, b + 1], "board": owner[n] + 1} for n, (a, b) in enumerate(pairs)
        ],
        "boards": boards,
        "io": io,
    }


def triangular(
    rows: int,
    cols: int | None = None,
    spacing: float = 0.016,
    k: float = 137.5,
    k_min: float = 103.125,
    k_max: float = 171.875,
    n_inputs: int = 1,
    n_outputs: int = 2,
    packed: bool | None = None,
) -> dict[str, Any]:
    """A triangular-lattice patch: `rows` rows of `cols` nodes, top row fixed at both ends.

    Inputs sit on the middle row, outputs on the bottom row (y loads and readings), spread
    evenly, so the generated file can be trained on at once.
    """
    cols = rows if cols is None else cols
    if rows < 2 or cols < 2:
        raise ValueError("a lattice needs at least 2 rows and 2 columns")
    pos = []
    for r in range(rows):
        for c in range(cols):
            pos.append(((c + 0.5 * (r % 2)) * spacing, -r * spacing * math.sqrt(3) / 2))
    P = np.array(pos)
    pairs = []
    for a in range(len(P)):
        for b in _neighbours_ahead(a, rows, cols):
            pairs.append((a, b))
    fixed = set(range(1, cols + 1))  # whole top row clamped: a lattice hung from a beam

    def spread(row: int, n: int) -> list[int]:
        idx = np.linspace(0, cols - 1, n + 2)[1:-1].round().astype(int)
        return [row * cols + int(c) + 1 for c in dict.fromkeys(idx)]

    io = {
        "default": {
            "inputs": [f"{n}:y" for n in spread(rows // 2, n_inputs)],
            "outputs": [f"{n}:y" for n in spread(rows - 1, n_outputs)],
        }
    }
    return _document(
        f"triangular-{rows}x{cols}",
        P,
        pairs,
        fixed,
        io,
        k,
        k_min,
        k_max,
        f"insitu network triangular --rows {rows} --cols {cols}",
        packed=packed,
    )


def _neighbours_ahead(a: int, rows: int, cols: int) -> list[int]:
    r, c = divmod(a, cols)
    out = []
    if c + 1 < cols:
        out.append(a + 1)
    if r + 1 < rows:
        # odd rows are shifted right by half a spacing
        below = [c, c + 1] if r % 2 else [c - 1, c]
        out += [(r + 1) * cols + cc for cc in below if 0 <= cc < cols]
    return out


def random_network(
    n_nodes: int,
    seed: int = 0,
    spacing: float = 0.016,
    k: float = 137.5,
    k_min: float = 103.125,
    k_max: float = 171.875,
    prune: float = 0.1,
) -> dict[str, Any]:
    """A disordered network: jittered points, Delaunay bonds, a fraction pruned where rigid.

    Pruning removes random bonds only while the network stays rigid under its supports, so
    the result is always a valid file; bonds of very flat triangles are dropped first.
    """
    if n_nodes < 4:
        raise ValueError("a random network needs at least 4 nodes")
    rng = np.random.default_rng(seed)
    side = math.ceil(math.sqrt(n_nodes))
    P = np.array([(i % side, i // side) for i in range(n_nodes)], float)
    P += rng.uniform(-0.3, 0.3, P.shape)
    P *= spacing
    P[:, 1] *= -1
    tri = Delaunay(P)
    edges = set()
    for s in tri.simplices:
        for a, b in ((s[0], s[1]), (s[1], s[2]), (s[0], s[2])):
            edges.add((min(a, b), max(a, b)))
    pairs = sorted(edges)
    top = np.argsort(P[:, 1])[::-1][: max(2, side // 2)]
    fixed = {int(i) + 1 for i in top}
    bottom = [int(i) + 1 for i in np.argsort(P[:, 1])[:2] if int(i) + 1 not in fixed]
    # the input goes on the free node nearest the middle height (never on a support)
    by_height = np.argsort(np.abs(P[:, 1] - P[:, 1].mean()))
    mid = next(int(i) + 1 for i in by_height if int(i) + 1 not in fixed)
    io = {"default": {"inputs": [f"{mid}:y"], "outputs": [f"{n}:y" for n in bottom]}}
    keep = np.ones(len(pairs), dtype=bool)
    clamped = np.zeros(P.size, dtype=bool)
    for n in fixed:
        clamped[(n - 1) * 2 : n * 2] = True
    arr = np.array(pairs)
    for idx in rng.permutation(len(pairs))[: int(prune * len(pairs) * 3)]:
        if (~keep).sum() >= int(prune * len(pairs)):
            break
        keep[idx] = False
        try:
            Equilibrium(compatibility(P, arr[keep]), np.full(keep.sum(), k), clamped)
        except MechanismError:
            keep[idx] = True  # this bond holds the network together
    pairs = [p for p, kp in zip(pairs, keep, strict=False) if kp]
    return _document(
        f"random-{n_nodes}-s{seed}",
        P,
        pairs,
        fixed,
        io,
        k,
        k_min,
        k_max,
        f"insitu network random --nodes {n_nodes} --seed {seed} --prune {prune}",
    )


def write_network(
    doc: dict[str, Any], path: str | Path, header: str = "", with_network: bool = False
) -> Any:
    """Validate the document, then write it (nothing is written if it is invalid). Returns
    the path, or (path, the validated Network) with ``with_network``."""
    from .schema import NetworkError

    p = Path(path)
    if p.is_dir():
        raise NetworkError(str(p), "file", "is a directory: give a file name to write")
    text = to_toml(doc, header)
    net = parse_network(text, str(path))
    tmp = p.with_name(p.name + ".tmp")
    try:  # through a temporary file: a failed write leaves no half file behind
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise NetworkError(str(p), "file", f"cannot write ({exc.strerror})") from None
    return (p, net) if with_network else p


__all__ = ["AXES", "random_network", "to_toml", "triangular", "write_network"]
