"""Packed network files (binary arrays in the TOML) and rigidity checked by the first
factorisation for large networks."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from insitu.network import schema
from insitu.network.generate import to_toml, triangular
from insitu.network.schema import NetworkError, parse_network


def _net(packed: bool, rows: int = 6, cols: int = 7):
    doc = triangular(rows, cols, n_inputs=2, n_outputs=3, packed=packed)
    return doc, parse_network(to_toml(doc), f"<{'packed' if packed else 'tables'}>")


def test_packed_and_table_forms_are_the_same_network() -> None:
    """The generator's two forms of one lattice load to the same arrays, bounds, supports,
    io sets and boards (the packed form's implicit boards own the same bonds and carry the
    same parts as the table form's explicit ones)."""
    _, a = _net(packed=False)
    doc, b = _net(packed=True)
    assert "packed" in doc and "nodes" not in doc and "boards" not in doc
    assert a.node_ids == b.node_ids and a.fixed == b.fixed
    # the table form writes 12 decimals; the packed form's binary is the generator's exactly
    assert np.abs(a.positions - b.positions).max() <= 1e-12
    assert np.array_equal(a.bonds, b.bonds)
    for f in ("k_init", "k_min", "k_max"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert a.io == b.io
    ka = sorted((x.id, x.node, x.bonds, x.carries, x.family) for x in a.boards)
    kb = sorted((x.id, x.node, x.bonds, x.carries, x.family) for x in b.boards)
    assert ka == kb


def test_large_generated_networks_are_packed() -> None:
    assert "packed" in triangular(46, 46)  # 2,116 nodes
    assert "nodes" in triangular(44, 44)  # 1,936 nodes


DTYPES = {"node_ids": "<i4", "x": "<f8", "fixed": "u1", "bonds": "<i4"}


def _arrays_of(doc: dict) -> dict[str, np.ndarray]:
    p = doc["packed"]
    return {k: np.frombuffer(base64.b64decode(p[k]), dtype=DTYPES[k]).copy() for k in DTYPES}


def _packed_text(**change: np.ndarray | str) -> str:
    """A 4 x 4 packed lattice with some arrays replaced (a string: as written)."""
    doc = triangular(4, 4, packed=True)
    for k, v in change.items():
        doc["packed"][k] = v if isinstance(v, str) else base64.b64encode(
            np.asarray(v, dtype=DTYPES[k]).tobytes()
        ).decode()
    return to_toml(doc)


def _bad(name: str, fn) -> dict:
    return {name: fn(_arrays_of(triangular(4, 4, packed=True))[name])}


def _set(a: np.ndarray, i: int, v: float) -> np.ndarray:
    a[i] = v
    return a


@pytest.mark.parametrize(
    "change, where, reason",
    [
        ({"x": "not base64!"}, "geometry.packed.x", "not valid base64"),
        (_bad("x", lambda x: x[:-1]), "geometry.packed.x", "need 16 nodes x 2"),
        (_bad("x", lambda x: _set(x, 6, np.nan)), "geometry.packed.x[3]", "finite"),
        (_bad("node_ids", lambda x: _set(x, 5, 3)), "geometry.packed.node_ids[5]",
         "duplicate node id 3 (also geometry.packed.node_ids[2])"),
        (_bad("fixed", lambda x: _set(x, 7, 2)), "geometry.packed.fixed[7]", "0 or 1"),
        (_bad("bonds", lambda x: _set(x, 3, 99)), "geometry.packed.bonds[1]", "unknown node 99"),
        (_bad("bonds", lambda x: _set(x, 1, x[0])), "geometry.packed.bonds[0]", "to itself"),
        (_bad("bonds", lambda x: np.concatenate([x, x[:2]])), "geometry.packed.bonds[",
         "duplicate bond"),
        (_bad("x", lambda x: _set(_set(x, 2, x[0]), 3, x[1])), "geometry.packed.bonds[0]",
         "zero-length bond 1-2"),
    ],
)  # fmt: skip
def test_bad_packed_arrays_are_named(change: dict, where: str, reason: str) -> None:
    with pytest.raises(NetworkError) as err:
        parse_network(_packed_text(**change), "<f>")
    assert err.value.where.startswith(where) and reason in err.value.reason, str(err.value)


def test_packed_and_tables_together_are_refused() -> None:
    text = _packed_text() + "\n"
    text = text.replace("[geometry.packed]", "[geometry]\nnodes = []\n\n[geometry.packed]")
    with pytest.raises(NetworkError, match="not both"):
        parse_network(text, "<f>")


def test_large_networks_are_checked_by_their_first_factorisation(monkeypatch) -> None:
    """Above EAGER_RIGIDITY_DOFS a mechanism loads, and its first factorisation refuses it
    naming the moving node; a rigid network keeps that factorisation for its solves."""
    doc = triangular(5, 5, packed=True)
    text = to_toml(doc)
    # a dangling node: one bond to the lattice, free to swing
    a = _arrays_of(doc)
    ids = np.append(a["node_ids"], 99)
    x = np.append(a["x"], [0.5, 0.5])
    fixed = np.append(a["fixed"], 0)
    bonds = np.append(a["bonds"], [25, 99])
    dangling = text
    for k, v, dt in (("node_ids", ids, "<i4"), ("x", x, "<f8"), ("fixed", fixed, "u1"),
                     ("bonds", bonds, "<i4")):  # fmt: skip
        dangling = dangling.replace(doc["packed"][k], base64.b64encode(v.astype(dt)).decode())
    with pytest.raises(NetworkError, match="nodes moving freely: 99"):
        parse_network(dangling, "<f>")  # small: checked on loading
    monkeypatch.setattr(schema, "EAGER_RIGIDITY_DOFS", 10)
    net = parse_network(dangling, "<f>")  # large: loads
    with pytest.raises(NetworkError, match="nodes moving freely: 99"):
        net.equilibrium()
    rigid = parse_network(text, "<f>")
    assert rigid.equilibrium() is rigid.equilibrium()

