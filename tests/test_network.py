"""Network files: the reference network against the paper, validator errors, generators."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import examples

from insitu.cli.main import main
from insitu.network.generate import random_network, to_toml
from insitu.network.schema import NetworkError, load_network, parse_network

A = 0.016  # lattice spacing of the paper's network, m
H = A * math.sqrt(3) / 2

# DESIGN.md section 3: node -> (x in units of a, row); y = -row * a*sqrt(3)/2
PAPER_NODES = {
    5: (-4, 0), 4: (-3, 0), 3: (-2, 0), 2: (-1, 0), 1: (0, 0),
    9: (-3.5, 1), 8: (-2.5, 1), 7: (-1.5, 1), 6: (-0.5, 1),
    12: (-3, 2), 11: (-2, 2), 10: (-1, 2),
    14: (-2.5, 3), 13: (-1.5, 3),
}  # fmt: skip


# ----------------------------------------------------------------------------- li-mao-2024


def test_li_mao_matches_the_paper(li_mao_path: Path) -> None:
    net = load_network(li_mao_path)
    assert net.name == "li-mao-2024"
    assert (net.n_nodes, net.n_bonds, net.dim) == (14, 28, 2)
    assert sorted(net.node_ids) == list(range(1, 15))
    for nid, (x, row) in PAPER_NODES.items():
        assert net.positions[net.index(nid)] == pytest.approx([x * A, -row * H], abs=1e-11)
    # every pair of nodes at distance a is a bond, and nothing else is
    P = net.positions
    at_a = {
        frozenset((net.node_ids[i], net.node_ids[j]))
        for i in range(14)
        for j in range(i + 1, 14)
        if abs(np.linalg.norm(P[i] - P[j]) - A) < 1e-9
    }
    assert {frozenset(b) for b in net.bond_ids()} == at_a
    assert len(at_a) == 28
    assert set(net.fixed) == {1, 5}
    # bar model k = Y w t / L: Y = 0.55 MPa, t = 2 mm, L = 16 mm, w in [1.5, 2.5] mm
    assert net.k_min == pytest.approx(np.full(28, 103.125))
    assert net.k_max == pytest.approx(np.full(28, 171.875))
    assert net.k_init == pytest.approx(np.full(28, 137.5))
    ports = {
        name: ([str(p) for p in s.inputs], [str(p) for p in s.outputs])
        for name, s in net.io.items()
    }
    assert ports["behaviour"] == (["11:y"], ["13:y", "14:y"])
    assert ports["regression"] == (["11:y"], ["13:x", "13:y", "14:x", "14:y"])
    assert ports["iris"] == (["14:y", "12:y", "13:y", "10:y"], ["8:x", "2:x", "3:x"])


def test_li_mao_boards_own_every_bond_once_at_one_of_its_ends(li_mao_path: Path) -> None:
    net = load_network(li_mao_path)
    owned = sorted(b for board in net.boards for b in board.bonds)
    assert owned == list(range(net.n_bonds))
    ends = net.bond_ids()
    for board in net.boards:
        for b in board.bonds:
            assert board.node in ends[b]
    # inputs carry a force actuator, outputs a force actuator and a displacement sensor
    for s in net.io.values():
        for p in s.inputs:
            assert "force" in net.board_of_node(p.node).carries
        for p in s.outputs:
            assert {"force", "displacement"} <= net.board_of_node(p.node).carries


# ----------------------------------------------------------------------------- validator

GOOD = """\
[network]
name = "tiny"
schema = 1
dim = 2

[bond_model]
model = "spring"
k = 137.5
k_min = 100.0
k_max = 170.0

[geometry]
nodes = [
  { id = 1, x = [0.0, 0.0], fixed = true },
  { id = 2, x = [0.016, 0.0], fixed = true },
  { id = 3, x = [0.008, -0.0138] },
  { id = 4, x = [0.024, -0.0138] },
]
bonds = [
  { nodes = [1, 2] },
  { nodes = [1, 3] },
  { nodes = [2, 3] },
  { nodes = [2, 4] },
  { nodes = [3, 4] },
]

[hardware]
boards = [
  { id = 1, node = 1, family = "pico" },
  { id = 2, node = 2, family = "pico" },
  { id = 3, node = 3, family = "pico", carries = ["force"] },
  { id = 4, node = 4, family = "pico", carries = ["force", "displacement"] },
]

[io.task]
inputs = ["3:y"]
outputs = ["4:y"]
"""

# name: (text to replace in GOOD, replacement, field named, reason pattern)
BAD = {
    "unknown node in a bond": (
        "{ nodes = [3, 4] }", "{ nodes = [3, 9] }", "geometry.bonds[4].nodes", "unknown node 9"
    ),
    "duplicate bond": (
        "  { nodes = [3, 4] },\n", "  { nodes = [3, 4] },\n  { nodes = [2, 1] },\n",
        "geometry.bonds[5].nodes", r"duplicate bond 2-1 \(also geometry.bonds\[0\]\)",
    ),
    "zero-length bond": (
        "x = [0.024, -0.0138]", "x = [0.008, -0.0138]",
        "geometry.bonds[4].nodes", "zero-length bond 3-4",
    ),
    "bond to itself": (
        "{ nodes = [3, 4] }", "{ nodes = [3, 3] }", "geometry.bonds[4].nodes", "to itself"
    ),
    "bounds inverted": (
        "k_min = 100.0\nk_max = 170.0", "k_min = 180.0\nk_max = 170.0",
        "bond_model.k_min", "bounds inverted: 180.0 > k_max 170.0",
    ),
    "k outside its bounds": (
        "k = 137.5", "k = 200.0", "bond_model.k", r"200.0 outside \[k_min, k_max\]"
    ),
    "mechanism under clamps": (
        "  { nodes = [2, 3] },\n", "", "nodes/bonds", "mechanism.*nodes moving freely: 3, 4"
    ),
    "no supports": (
        "[0.0, 0.0], fixed = true }", "[0.0, 0.0] }",  # node 2 alone pins no rotation
        "nodes/bonds", "mechanism under its clamps",
    ),
    "input on a fixed node": (
        'inputs = ["3:y"]', 'inputs = ["1:y"]', "io.task.inputs[0]", "input on fixed node 1"
    ),
    "unknown key": (
        "{ id = 3, x = [0.008, -0.0138] }", '{ id = 3, x = [0.008, -0.0138], colour = "red" }',
        "geometry.nodes[2].colour", r"unknown key \(allowed: fixed, id, x\)",
    ),
    "unknown top-level table": (
        "[io.task]", "[extras]\na = 1\n\n[io.task]", "extras", "unknown key"
    ),
    "bad port string": (
        'outputs = ["4:y"]', 'outputs = ["4y"]', "io.task.outputs[0]", "must be 'NODE:AXIS'"
    ),
    "bad port axis": (
        'outputs = ["4:y"]', 'outputs = ["4:z"]',
        "io.task.outputs[0]", "axis 'z' is not one of x, y",
    ),
    "port on unknown node": (
        'outputs = ["4:y"]', 'outputs = ["7:y"]', "io.task.outputs[0]", "unknown node 7"
    ),
    "board missing an actuator": (
        'carries = ["force"] }', "carries = [] }",
        "io.task.inputs[0]", "board 3 at node 3 does not carry force",
    ),
    "board missing a sensor": (
        'carries = ["force", "displacement"]', 'carries = ["force"]',
        "io.task.outputs[0]", "board 4 at node 4 does not carry displacement",
    ),
    "bond owned by a board not at its ends": (
        "{ nodes = [3, 4] }", "{ nodes = [3, 4], board = 1 }",
        "geometry.bonds[4].board", "board 1 sits at node 1, not at an end of bond 3-4",
    ),
    "duplicate node id": (
        "{ id = 4, x", "{ id = 3, x", "geometry.nodes[3].id", "duplicate node id 3"
    ),
    "coordinate not a number": (
        "x = [0.024, -0.0138]", 'x = [0.024, "low"]', "geometry.nodes[3].x", "finite number"
    ),
    "unknown bond model": (
        'model = "spring"', 'model = "rubber"', "bond_model.model", "unknown bond model 'rubber'"
    ),
    "bad TOML": ("[network]", "[network", "toml", "Expected ']'"),
}  # fmt: skip


def bad_file(tmp_path: Path, case: str) -> Path:
    old, new, _, _ = BAD[case]
    assert GOOD.count(old) == 1, f"test case {case!r} does not edit one place"
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(old, new))
    return path


def test_good_file_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    net = load_network(path)
    assert (net.n_nodes, net.n_bonds) == (4, 5)
    assert main(["network", "check", str(path)]) == 0


@pytest.mark.parametrize("case", sorted(BAD))
def test_validator_names_file_field_and_reason(tmp_path: Path, case: str) -> None:
    path = bad_file(tmp_path, case)
    _, _, where, reason = BAD[case]
    with pytest.raises(NetworkError) as info:
        load_network(path)
    err = info.value
    assert (err.source, err.where) == (str(path), where)
    assert re.search(reason, err.reason), err.reason
    assert str(err) == f"{path}: {where}: {err.reason}"
    assert "\n" not in str(err)


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", [["solve"], ["network", "check"]])
def test_cli_reports_a_bad_file_in_one_line_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: list[str]
) -> None:
    path = bad_file(tmp_path, case)
    before = sorted(tmp_path.iterdir())
    assert main([*command, str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"insitu {command[0]}")
    assert str(path) in lines[0] and BAD[case][2] in lines[0]
    assert sorted(tmp_path.iterdir()) == before


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", str(tmp_path / "nope.toml")]) == 2
    assert capsys.readouterr().err.strip().endswith("nope.toml: file: not found")


def test_check_reports_each_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], li_mao_path: Path
) -> None:
    bad = bad_file(tmp_path, "duplicate bond")
    assert main(["network", "check", str(li_mao_path), str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and "li-mao-2024: 14 nodes, 28 bonds" in out
    assert err.count("\n") == 1 and "duplicate bond" in err


def test_entry_point_exit_status(tmp_path: Path) -> None:
    """The installed `insitu` command, as a user runs it."""
    bad = bad_file(tmp_path, "mechanism under clamps")
    exe = Path(sys.executable).with_name("insitu")
    r = subprocess.run([str(exe), "solve", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stdout == "" and len(r.stderr.splitlines()) == 1


def test_bad_toml_source_name_without_file() -> None:
    with pytest.raises(NetworkError, match=r"^<network>: toml: "):
        parse_network("[network")


# ----------------------------------------------------------------------------- generators


@pytest.mark.parametrize(
    "argv",
    [
        ["network", "triangular", "--rows", "1"],
        ["network", "triangular", "--rows", "3", "--cols", "1"],
        ["network", "random", "--nodes", "3"],
        ["network", "random", "--nodes", "10", "--prune", "1.5"],
    ],
)
def test_bad_generator_arguments_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    out = tmp_path / "out.toml"
    assert main([*argv, "-o", str(out)]) == 2
    assert not out.exists()
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_generator_to_unwritable_place_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no" / "such" / "dir.toml"
    assert main(["network", "triangular", "--rows", "3", "-o", str(out)]) == 2
    assert not out.exists()
    assert len(capsys.readouterr().err.splitlines()) == 1


@settings(max_examples=examples(6))
@given(st.integers(2, 9), st.one_of(st.none(), st.integers(2, 9)))
def test_triangular_generator_writes_valid_files(rows: int, cols: int | None) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "tri.toml"
        argv = ["network", "triangular", "--rows", str(rows), "-o", str(out)]
        if cols is not None:
            argv += ["--cols", str(cols)]
        assert main(argv) == 0
        net = load_network(out)
    c = rows if cols is None else cols
    assert net.n_nodes == rows * c
    # bonds of a triangular patch: horizontal + two diagonals between consecutive rows
    assert net.n_bonds == rows * (c - 1) + (rows - 1) * (2 * c - 1)
    lengths = np.linalg.norm(
        net.positions[net.bonds[:, 1]] - net.positions[net.bonds[:, 0]], axis=1
    )
    assert lengths == pytest.approx(np.full(net.n_bonds, A))
    assert len(net.io["default"].inputs) >= 1 and len(net.io["default"].outputs) >= 1


@settings(max_examples=examples(6))
@given(st.integers(4, 40), st.integers(0, 10_000))
def test_random_generator_writes_valid_files(n: int, seed: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "rnd.toml"
        assert (
            main(["network", "random", "--nodes", str(n), "--seed", str(seed), "-o", str(out)]) == 0
        )
        net = load_network(out)
        text = out.read_text()
    assert net.n_nodes == n
    assert "Generated by: insitu network random" in text
    # same arguments, same network
    assert to_toml(random_network(n, seed=seed)) == to_toml(random_network(n, seed=seed))


def test_generator_to_stdout_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["network", "triangular", "--rows", "4"]) == 0
    net = parse_network(capsys.readouterr().out, "<stdout>")
    assert net.n_nodes == 16


def test_a_lattice_too_big_for_the_machine_is_refused_not_built(tmp_path, capsys) -> None:
    """`--rows 1000000` (a typo with extra zeros) asked for 10^12 nodes and ran the machine out
    of memory (killed, exit 137). Now: one line, exit 2, no file."""
    from insitu.cli.main import main

    out = tmp_path / "big.toml"
    assert main(["network", "triangular", "--rows", "1000000", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["insitu network: error: --rows 1000000 x --cols 1000000 = "
                   "1,000,000,000,000 nodes; at most 1,000,000"]  # fmt: skip
    assert not out.exists()
