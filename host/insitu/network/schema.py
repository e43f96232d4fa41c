"""The network file: schema, loading and validation (the one owner; docs/network-format.md).

A network file is TOML. Geometry is data: every network lives in a file under
hardware/networks/, never as a literal in code. Loading returns an immutable ``Network`` whose
arrays are what the physics core consumes; every error names the file, the field and the reason.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

SCHEMA_VERSION = 1
AXES = "xyz"
# Networks up to this many free DOFs are checked for mechanisms when loaded (a factorisation
# of ~0.2 s); larger ones at their first factorisation, so that loading 10^5 nodes takes
# seconds and a solve right after it factorises once (docs/network-format.md).
EAGER_RIGIDITY_DOFS = 20_000
CARRIES = ("force", "clamp", "displacement")
BOARD_FAMILIES = ("pico", "pico2", "esp32", "emu")


class NetworkError(ValueError):
    """A network file is invalid. ``str()`` is one line naming file, field and reason."""

    def __init__(self, source: str, where: str, reason: str) -> None:
        self.source, self.where, self.reason = source, where, reason
        super().__init__(f"{source}: {where}: {reason}")


@dataclass(frozen=True)
class Port:
    """One degree of freedom of one node, written ``NODE:AXIS`` (e.g. ``13:y``)."""

    node: int
    axis: int

    def __str__(self) -> str:
        return f"{self.node}:{AXES[self.axis]}"


@dataclass(frozen=True)
class IOSet:
    """Input and output DOFs of one task family on this network."""

    name: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]


@dataclass(frozen=True)
class Board:
    """A node board: the bonds it owns and the actuators/sensors it carries."""

    id: int
    node: int
    family: str
    bonds: tuple[int, ...]  # indices into Network.bonds
    carries: frozenset[str]
    unique_id: str | None = None


@dataclass(frozen=True)
class Network:
    """A validated spring network. Node ids are the file's; arrays are indexed 0..N-1."""

    name: str
    source: str
    text: str
    dim: int
    node_ids: tuple[int, ...]
    positions: np.ndarray  # (N, dim) metres
    fixed: tuple[int, ...]  # node ids clamped at zero displacement (supports)
    bonds: np.ndarray  # (B, 2) node indices
    k_init: np.ndarray  # (B,) N/m
    k_min: np.ndarray
    k_max: np.ndarray
    boards: tuple[Board, ...]
    io: Mapping[str, IOSet]
    relaxation_time: float  # s, first-order settle time constant (emulator)
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def n_bonds(self) -> int:
        return int(self.bonds.shape[0])

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def index(self, node_id: int) -> int:
        """Array index of a node id."""
        return self._index[node_id]

    def dof(self, port: Port) -> int:
        """Global DOF number of a port (node index * dim + axis)."""
        return self._index[port.node] * self.dim + port.axis

    def bond_ids(self) -> list[tuple[int, int]]:
        """Bonds as (node id, node id) pairs, in file order."""
        ids = self.node_ids
        return [(ids[a], ids[b]) for a, b in self.bonds]

    def clamped_dofs(self) -> np.ndarray:
        """Boolean mask of DOFs held at zero by the supports."""
        mask = np.zeros(self.n_nodes * self.dim, dtype=bool)
        for nid in self.fixed:
            i = self._index[nid]
            mask[i * self.dim : (i + 1) * self.dim] = True
        return mask

    def iodofs(self, io: str) -> tuple[np.ndarray, np.ndarray]:
        """Input and output DOF numbers of an io set."""
        s = self.io_set(io)
        return (
            np.array([self.dof(p) for p in s.inputs], dtype=int),
            np.array([self.dof(p) for p in s.outputs], dtype=int),
        )

    def io_set(self, name: str) -> IOSet:
        try:
            return self.io[name]
        except KeyError:
            known = ", ".join(sorted(self.io)) or "none"
            raise NetworkError(self.source, f"io.{name}", f"no such io set (file has: {known})")

    def board_of_node(self, node_id: int) -> Board | None:
        for b in self.boards:
            if b.node == node_id:
                return b
        return None

    def equilibrium(self) -> Any:
        """The statics at k_init under the supports, factorised once and kept (the rigidity
        check's own factorisation: a solve at k_init after loading costs no second one).
        Raises NetworkError naming the moving nodes if the network is a mechanism."""
        eq = self.__dict__.get("_eq")
        if eq is None:
            from insitu.physics.linear import Equilibrium, MechanismError, compatibility

            C = compatibility(self.positions, self.bonds)
            try:
                eq = Equilibrium(C, self.k_init, self.clamped_dofs(), self.node_ids, self.dim)
            except MechanismError as exc:
                raise NetworkError(self.source, "nodes/bonds", str(exc)) from None
            object.__setattr__(self, "_eq", eq)
        return eq

    @property
    def _index(self) -> dict[int, int]:
        # cached on first use; the dataclass is frozen so bypass __setattr__
        idx = self.__dict__.get("_idx")
        if idx is None:
            idx = {nid: i for i, nid in enumerate(self.node_ids)}
            object.__setattr__(self, "_idx", idx)
        return idx


# ----------------------------------------------------------------------------- parsing helpers


class ParseContext:
    """Checks of parsed TOML values that fail with one line naming file, field and reason
    (``error``: the error class; the pin-map parser uses its own)."""

    error: type[NetworkError] = NetworkError

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, reason: str) -> NetworkError:
        return self.error(self.source, where, reason)

    def toml(self, text: str) -> dict[str, Any]:
        """The parsed TOML document, or this context's error naming the TOML problem."""
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise self.fail("toml", str(exc))

    def table(self, data: Mapping[str, Any], key: str, where: str, required: bool = True) -> dict:
        v = data.get(key)
        if v is None:
            if required:
                raise self.fail(f"{where}{key}", "missing (required table)")
            return {}
        if not isinstance(v, dict):
            raise self.fail(f"{where}{key}", f"must be a table, got {type(v).__name__}")
        return v

    def number(self, v: Any, where: str, positive: bool = False) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(where, f"must be a finite number, got {v!r}")
        if positive and v <= 0:
            raise self.fail(where, f"must be > 0, got {v!r}")
        return float(v)

    def integer(self, v: Any, where: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(where, f"must be an integer, got {v!r}")
        return v

    def unknown_keys(self, d: Mapping[str, Any], allowed: set[str], where: str) -> None:
        extra = sorted(set(d) - allowed)
        if extra:
            raise self.fail(
                f"{where}{extra[0]}", f"unknown key (allowed: {', '.join(sorted(allowed))})"
            )


_BOND_MODEL_KEYS = {
    "model",
    "k",
    "k_min",
    "k_max",
    "youngs_modulus",
    "thickness",
    "width",
    "width_min",
    "width_max",
}


def _bond_stiffness(ctx: ParseContext, model: Mapping[str, Any], length: float, where: str):
    """(k_init, k_min, k_max) from a bond model: a bar (k = Y w t / L) or a plain spring."""
    kind = model.get("model", "spring")
    if kind == "bar":
        Y = ctx.number(model.get("youngs_modulus"), f"{where}youngs_modulus", positive=True)
        t = ctx.number(model.get("thickness"), f"{where}thickness", positive=True)
        w = ctx.number(model.get("width"), f"{where}width", positive=True)
        wmin = ctx.number(model.get("width_min", w), f"{where}width_min", positive=True)
        wmax = ctx.number(model.get("width_max", w), f"{where}width_max", positive=True)
        if wmin > wmax:
            raise ctx.fail(f"{where}width_min", f"bounds inverted: {wmin} > width_max {wmax}")
        if not wmin <= w <= wmax:
            raise ctx.fail(
                f"{where}width", f"{w} outside [width_min, width_max] = [{wmin}, {wmax}]"
            )
        scale = Y * t / length
        return w * scale, wmin * scale, wmax * scale
    if kind == "spring":
        k = ctx.number(model.get("k"), f"{where}k", positive=True)
        kmin = ctx.number(model.get("k_min", k), f"{where}k_min", positive=True)
        kmax = ctx.number(model.get("k_max", k), f"{where}k_max", positive=True)
        if kmin > kmax:
            raise ctx.fail(f"{where}k_min", f"bounds inverted: {kmin} > k_max {kmax}")
        if not kmin <= k <= kmax:
            raise ctx.fail(f"{where}k", f"{k} outside [k_min, k_max] = [{kmin}, {kmax}]")
        return k, kmin, kmax
    raise ctx.fail(f"{where}model", f"unknown bond model {kind!r} (use 'bar' or 'spring')")


def _parse_port(ctx: ParseContext, v: Any, where: str, dim: int) -> Port:
    if not isinstance(v, str) or v.count(":") != 1:
        raise ctx.fail(where, f"must be 'NODE:AXIS' like '13:y', got {v!r}")
    node_s, axis_s = v.split(":")
    try:
        node = int(node_s)
    except ValueError:
        raise ctx.fail(where, f"node {node_s!r} is not an integer id")
    if axis_s not in AXES[:dim]:
        raise ctx.fail(where, f"axis {axis_s!r} is not one of {', '.join(AXES[:dim])}")
    return Port(node, AXES.index(axis_s))


# ----------------------------------------------------------------------------- loading


def read_source(path: str | Path, error: type[NetworkError] = NetworkError) -> str:
    """A TOML file's text; a missing or unreadable file is ``error`` naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(str(path), "file", "not found")
    except IsADirectoryError:
        raise error(str(path), "file", "is a directory, not a file")
    except UnicodeDecodeError as exc:
        raise error(
            str(path), "file", f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at {exc.start})"
        )
    except OSError as exc:
        raise error(str(path), "file", f"cannot read ({exc.strerror})")


def _table_geometry(ctx: ParseContext, geometry: dict, dim: int, model: dict):
    """Nodes and bonds written as one inline table each (hand-written and small files)."""
    # nodes
    raw_nodes = geometry.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise ctx.fail("geometry.nodes", "missing or empty (need an array of {id, x, fixed?})")
    node_ids: list[int] = []
    positions: list[list[float]] = []
    fixed: list[int] = []
    seen: dict[int, int] = {}
    for n, nd in enumerate(raw_nodes):
        w = f"geometry.nodes[{n}]"
        if not isinstance(nd, dict):
            raise ctx.fail(w, "must be a table {id, x, fixed?}")
        ctx.unknown_keys(nd, {"id", "x", "fixed"}, w + ".")
        nid = ctx.integer(nd.get("id"), f"{w}.id")
        if nid in seen:
            raise ctx.fail(f"{w}.id", f"duplicate node id {nid} (also geometry.nodes[{seen[nid]}])")
        seen[nid] = n
        x = nd.get("x")
        if not isinstance(x, list) or len(x) != dim:
            raise ctx.fail(f"{w}.x", f"must be a list of {dim} coordinates in metres, got {x!r}")
        positions.append([ctx.number(c, f"{w}.x") for c in x])
        fx = nd.get("fixed", False)
        if not isinstance(fx, bool):
            raise ctx.fail(f"{w}.fixed", f"must be true or false, got {fx!r}")
        node_ids.append(nid)
        if fx:
            fixed.append(nid)
    pos = np.array(positions, dtype=float)
    index = {nid: i for i, nid in enumerate(node_ids)}

    # bonds
    raw_bonds = geometry.get("bonds")
    if not isinstance(raw_bonds, list) or not raw_bonds:
        raise ctx.fail("geometry.bonds", "missing or empty (need an array of {nodes = [i, j]})")
    pairs: list[tuple[int, int]] = []
    kk: list[tuple[float, float, float]] = []
    owners: list[int | None] = []
    seen_pairs: dict[frozenset, int] = {}
    for n, bd in enumerate(raw_bonds):
        w = f"geometry.bonds[{n}]"
        if not isinstance(bd, dict):
            raise ctx.fail(w, "must be a table {nodes = [i, j], board?, ...}")
        ctx.unknown_keys(bd, _BOND_MODEL_KEYS | {"nodes", "board"}, w + ".")
        ends = bd.get("nodes")
        if not isinstance(ends, list) or len(ends) != 2:
            raise ctx.fail(f"{w}.nodes", f"must be [i, j], got {ends!r}")
        i, j = (ctx.integer(e, f"{w}.nodes") for e in ends)
        for e in (i, j):
            if e not in index:
                raise ctx.fail(f"{w}.nodes", f"unknown node {e}")
        if i == j:
            raise ctx.fail(f"{w}.nodes", f"bond joins node {i} to itself")
        key = frozenset((i, j))
        if key in seen_pairs:
            raise ctx.fail(
                f"{w}.nodes", f"duplicate bond {i}-{j} (also geometry.bonds[{seen_pairs[key]}])"
            )
        seen_pairs[key] = n
        length = float(np.linalg.norm(pos[index[j]] - pos[index[i]]))
        if length <= 1e-12:
            raise ctx.fail(f"{w}.nodes", f"zero-length bond {i}-{j} (nodes coincide)")
        merged = {**model, **{k: v for k, v in bd.items() if k in _BOND_MODEL_KEYS}}
        if not merged:
            raise ctx.fail(f"{w}", "no stiffness: give k (or a [bond_model] table)")
        kk.append(
            _bond_stiffness(
                ctx, merged, length, f"{w}." if set(bd) & _BOND_MODEL_KEYS else "bond_model."
            )
        )
        b = bd.get("board")
        owners.append(None if b is None else ctx.integer(b, f"{w}.board"))
        pairs.append((index[i], index[j]))
    return node_ids, pos, fixed, np.array(pairs, dtype=int), np.array(kk, dtype=float), owners


def _packed_geometry(ctx: ParseContext, packed: dict, dim: int, model: dict):
    """Nodes and bonds as binary arrays (network/packed.py): validated vectorised."""
    from . import packed as pk

    g = pk.parse(ctx, packed, dim)
    k3 = g["k3"]
    if k3 is None:
        if not model:
            raise ctx.fail("bond_model", "missing: a packed geometry without k arrays needs one")
        # the model at unit length; only the bar model depends on the length, as 1/L
        unit = np.array(_bond_stiffness(ctx, model, 1.0, "bond_model."))
        if model.get("model", "spring") == "bar":
            k3 = unit[None, :] / g["length"][:, None]
        else:
            k3 = np.broadcast_to(unit, (len(g["length"]), 3)).copy()
    owners = g["owners"] if g["owners"] is not None else [None] * len(k3)
    return g["node_ids"], g["pos"], g["fixed"], g["bonds"], k3, owners


def load_network(path: str | Path) -> Network:
    """Read and validate a network file; raises NetworkError naming file, field and reason.

    Every command's NETWORK argument comes through here: a bare name that is not an existing
    file (``li-mao-2024``) is the bundled network of that name (insitu.resources)."""
    if not Path(path).exists():
        from insitu.resources import network_names, network_path

        bundled = network_path(str(path))
        if bundled is not None:
            path = bundled
        elif Path(path).name == str(path):  # a bare name, not a path to a missing file
            names = ", ".join(network_names()) or "none"
            raise NetworkError(
                str(path), "file", f"not found, and not a bundled network name ({names})"
            )
    return parse_network(read_source(path), str(path))


def parse_network(text: str, source: str = "<network>") -> Network:
    ctx = ParseContext(source)
    data = ctx.toml(text)
    ctx.unknown_keys(data, {"network", "bond_model", "geometry", "hardware", "io"}, "")
    geometry = ctx.table(data, "geometry", "")
    ctx.unknown_keys(geometry, {"nodes", "bonds", "packed"}, "geometry.")
    hardware = ctx.table(data, "hardware", "", required=False)
    ctx.unknown_keys(hardware, {"boards"}, "hardware.")

    head = ctx.table(data, "network", "")
    ctx.unknown_keys(
        head,
        {"name", "schema", "dim", "description", "reference", "relaxation_time", "generator"},
        "network.",
    )
    schema = head.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        raise ctx.fail(
            "network.schema", f"version {schema!r} not supported (this is {SCHEMA_VERSION})"
        )
    name = head.get("name")
    if not isinstance(name, str) or not name:
        raise ctx.fail("network.name", "missing or not a string")
    dim = ctx.integer(head.get("dim", 2), "network.dim")
    if dim not in (2, 3):
        raise ctx.fail("network.dim", f"must be 2 or 3, got {dim}")
    tau = ctx.number(head.get("relaxation_time", 0.05), "network.relaxation_time")
    if tau < 0:
        raise ctx.fail("network.relaxation_time", f"must be >= 0 s, got {tau}")

    model = ctx.table(data, "bond_model", "", required=False)
    ctx.unknown_keys(model, _BOND_MODEL_KEYS, "bond_model.")
    if "packed" in geometry:
        if "nodes" in geometry or "bonds" in geometry:
            raise ctx.fail("geometry.packed", "give packed arrays or nodes/bonds tables, not both")
        node_ids, pos, fixed, bonds, k_arr, owners = _packed_geometry(
            ctx, ctx.table(geometry, "packed", "geometry."), dim, model
        )
    else:
        node_ids, pos, fixed, bonds, k_arr, owners = _table_geometry(ctx, geometry, dim, model)
    index = {nid: i for i, nid in enumerate(node_ids)}

    # io sets
    io_raw = ctx.table(data, "io", "", required=False)
    io: dict[str, IOSet] = {}
    fixed_set = set(fixed)
    for io_name, spec in io_raw.items():
        w = f"io.{io_name}"
        if not isinstance(spec, dict):
            raise ctx.fail(w, "must be a table {inputs = [...], outputs = [...]}")
        ctx.unknown_keys(spec, {"inputs", "outputs", "description"}, w + ".")
        sides = []
        for side in ("inputs", "outputs"):
            lst = spec.get(side)
            if not isinstance(lst, list) or not lst:
                raise ctx.fail(f"{w}.{side}", "missing or empty list of 'NODE:AXIS'")
            ports = []
            for m, s in enumerate(lst):
                pw = f"{w}.{side}[{m}]"
                port = _parse_port(ctx, s, pw, dim)
                if port.node not in index:
                    raise ctx.fail(pw, f"unknown node {port.node}")
                if port.node in fixed_set:
                    raise ctx.fail(pw, f"{side[:-1]} on fixed node {port.node}")
                if port in ports:
                    raise ctx.fail(pw, f"duplicate {side[:-1]} {port}")
                ports.append(port)
            sides.append(tuple(ports))
        io[io_name] = IOSet(io_name, sides[0], sides[1])

    raw_boards = hardware.get("boards")
    if raw_boards is None and all(o is None for o in owners):
        boards = _implicit_boards(node_ids, bonds, io)  # the common large case, fast
    else:
        boards = _parse_boards(ctx, raw_boards, node_ids, owners, bonds.tolist(), io)

    net = Network(
        name=name,
        source=source,
        text=text,
        dim=dim,
        node_ids=tuple(node_ids),
        positions=pos,
        fixed=tuple(fixed),
        bonds=bonds,
        k_init=k_arr[:, 0].copy(),
        k_min=k_arr[:, 1].copy(),
        k_max=k_arr[:, 2].copy(),
        boards=boards,
        io=io,
        relaxation_time=tau,
        meta={k: head[k] for k in ("description", "reference", "generator") if k in head},
    )
    if int((~net.clamped_dofs()).sum()) <= EAGER_RIGIDITY_DOFS:
        check_rigid(net)
    # larger networks are checked by their first factorisation (Network.equilibrium, or any
    # Equilibrium of them), which raises the same error: loading stays a matter of seconds
    return net


def _implicit_boards(node_ids: list[int], bonds: np.ndarray, io: Mapping[str, IOSet]):
    """No [hardware] and no bond names a board: one 'emu' board per node (id = node id), each
    bond owned by the end whose board owns fewer bonds so far (ties: the lower id), inputs
    carrying a force actuator and outputs force, displacement and clamp. The same boards
    _parse_boards makes of such a file, without a table per node to check."""
    n = len(node_ids)
    load = [0] * n
    owned: list[list[int]] = [[] for _ in range(n)]
    ids = node_ids
    for b, (a, c) in enumerate(bonds.tolist()):
        o = a if (load[a], ids[a]) <= (load[c], ids[c]) else c
        load[o] += 1
        owned[o].append(b)
    carries: dict[int, set[str]] = {}
    for s in io.values():
        for p in s.inputs:
            carries.setdefault(p.node, set()).add("force")
        for p in s.outputs:
            carries.setdefault(p.node, set()).update(("force", "displacement", "clamp"))
    none: frozenset[str] = frozenset()
    return tuple(
        Board(nid, nid, "emu", tuple(owned[i]), frozenset(carries[nid]) if nid in carries else none)
        for i, nid in enumerate(ids)
    )


def _parse_boards(ctx, raw, node_ids, owners, pairs, io) -> tuple[Board, ...]:
    """Boards carry hardware. Omitted entirely: one 'emu' board per node, owning its bonds."""
    index = {nid: i for i, nid in enumerate(node_ids)}
    if raw is None:
        raw = [{"id": nid, "node": nid, "family": "emu"} for nid in node_ids]
        implicit = True
    else:
        implicit = False
        if not isinstance(raw, list):
            raise ctx.fail("hardware.boards", "must be an array of {id, node, family, carries?}")
    specs: dict[int, dict] = {}
    board_at: dict[int, int] = {}
    for n, bd in enumerate(raw):
        w = f"hardware.boards[{n}]"
        if not isinstance(bd, dict):
            raise ctx.fail(w, "must be a table {id, node, family, carries?, unique_id?}")
        ctx.unknown_keys(bd, {"id", "node", "family", "carries", "unique_id"}, w + ".")
        bid = ctx.integer(bd.get("id"), f"{w}.id")
        if bid in specs:
            raise ctx.fail(f"{w}.id", f"duplicate board id {bid}")
        node = ctx.integer(bd.get("node"), f"{w}.node")
        if node not in index:
            raise ctx.fail(f"{w}.node", f"unknown node {node}")
        if node in board_at:
            raise ctx.fail(f"{w}.node", f"node {node} already has board {board_at[node]}")
        fam = bd.get("family", "emu")
        if fam not in BOARD_FAMILIES:
            raise ctx.fail(
                f"{w}.family", f"unknown family {fam!r} (known: {', '.join(BOARD_FAMILIES)})"
            )
        carries = bd.get("carries", [])
        if not isinstance(carries, list) or any(c not in CARRIES for c in carries):
            raise ctx.fail(
                f"{w}.carries", f"must be a list drawn from {', '.join(CARRIES)}, got {carries!r}"
            )
        uid = bd.get("unique_id")
        if uid is not None and not isinstance(uid, str):
            raise ctx.fail(f"{w}.unique_id", "must be a hex string")
        specs[bid] = {"node": node, "family": fam, "carries": set(carries), "uid": uid}
        board_at[node] = bid

    # bond ownership: explicit, or (implicit boards) the endpoint with fewer bonds so far
    owned: dict[int, list[int]] = {bid: [] for bid in specs}
    for b, (owner, (a, c)) in enumerate(zip(owners, pairs, strict=False)):
        if owner is None:
            cands = [board_at.get(node_ids[a]), board_at.get(node_ids[c])]
            cands = [x for x in cands if x is not None]
            if not cands:
                raise ctx.fail(
                    f"geometry.bonds[{b}].board", "missing, and neither end node has a board"
                )
            owner = min(cands, key=lambda x: (len(owned[x]), x))
        elif owner not in specs:
            raise ctx.fail(f"geometry.bonds[{b}].board", f"unknown board {owner}")
        elif specs[owner]["node"] not in (node_ids[a], node_ids[c]):
            raise ctx.fail(
                f"geometry.bonds[{b}].board",
                f"board {owner} sits at node {specs[owner]['node']}, not at an end of bond "
                f"{node_ids[a]}-{node_ids[c]} (a board senses and tunes only its own node's bonds)",
            )
        owned[owner].append(b)

    # io needs hardware: inputs a force actuator; outputs force (adjoint) and displacement
    for name, s in io.items():
        for side, ports, need in (
            ("inputs", s.inputs, {"force"}),
            ("outputs", s.outputs, {"force", "displacement"}),
        ):
            # implicit boards also clamp at outputs (coupled learning holds them there)
            give = need | {"clamp"} if side == "outputs" else need
            for m, port in enumerate(ports):
                bid = board_at.get(port.node)
                if bid is None:
                    raise ctx.fail(f"io.{name}.{side}[{m}]", f"node {port.node} has no board")
                if implicit:
                    specs[bid]["carries"] |= give
                    continue
                missing = need - specs[bid]["carries"]
                if missing:
                    raise ctx.fail(
                        f"io.{name}.{side}[{m}]",
                        f"board {bid} at node {port.node} does not carry "
                        + ", ".join(sorted(missing)),
                    )
    return tuple(
        Board(bid, sp["node"], sp["family"], tuple(owned[bid]), frozenset(sp["carries"]), sp["uid"])
        for bid, sp in specs.items()
    )


def check_rigid(net: Network) -> None:
    """Refuse a network with zero-energy modes under its supports (a mechanism).

    Uses the initial stiffnesses; zero-energy modes do not depend on k > 0, so this holds for
    every stiffness within bounds. The check (inverse iteration on the factorisation) names
    the nodes that move freely; the factorisation is kept (``Network.equilibrium``).
    """
    net.equilibrium()
