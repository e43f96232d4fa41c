"""`insitu solve`: JSON equilibrium in SI units, and one-line errors for bad arguments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from insitu.cli.main import main
from insitu.network.schema import load_network
from insitu.physics.linear import Equilibrium, compatibility


def solve_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["solve", *argv, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return json.loads(out)


def test_json_shape_and_values(capsys: pytest.CaptureFixture[str], li_mao_path: Path) -> None:
    doc = solve_json(capsys, str(li_mao_path), "--load", "11:0,-0.049")
    assert set(doc) == {"nodes", "bonds"}
    assert set(doc["nodes"]) == {str(i) for i in range(1, 15)}
    assert all(set(v) == {"u"} and len(v["u"]) == 2 for v in doc["nodes"].values())
    assert len(doc["bonds"]) == 28
    assert all(set(b) == {"i", "j", "k", "e"} for b in doc["bonds"])
    # the same numbers as the library
    net = load_network(li_mao_path)
    eq = Equilibrium(compatibility(net.positions, net.bonds), net.k_init, net.clamped_dofs())
    f = np.zeros(28)
    f[net.index(11) * 2 + 1] = -0.049
    u = eq.solve(f).reshape(-1, 2)
    e = eq.elongation(u.ravel())
    for i, nid in enumerate(net.node_ids):
        assert doc["nodes"][str(nid)]["u"] == pytest.approx(u[i].tolist(), abs=1e-15)
    for n, ((a, b), bond) in enumerate(zip(net.bond_ids(), doc["bonds"], strict=True)):
        assert (bond["i"], bond["j"]) == (a, b)
        assert bond["k"] == pytest.approx(137.5)
        assert bond["e"] == pytest.approx(e[n], abs=1e-15)
    # SI: metres. 5 g on node 11 moves the outputs by a fraction of a millimetre
    assert -1e-3 < doc["nodes"]["13"]["u"][1] < -1e-4
    assert doc["nodes"]["1"]["u"] == [0.0, 0.0] and doc["nodes"]["5"]["u"] == [0.0, 0.0]


def test_several_loads_superpose_and_k_scales(
    capsys: pytest.CaptureFixture[str], li_mao_path: Path
) -> None:
    net = str(li_mao_path)
    a = solve_json(capsys, net, "--load", "11:0,-0.049")
    b = solve_json(capsys, net, "--load", "13:0.02,0")
    ab = solve_json(capsys, net, "--load", "11:0,-0.049", "--load", "13:0.02,0")
    twice = solve_json(capsys, net, "--load", "11:0,-0.0245", "--load", "11:0,-0.0245")
    stiff = solve_json(capsys, net, "--load", "11:0,-0.049", "--k", "275")
    for nid in a["nodes"]:
        ua, ub = np.array(a["nodes"][nid]["u"]), np.array(b["nodes"][nid]["u"])
        assert ab["nodes"][nid]["u"] == pytest.approx((ua + ub).tolist(), rel=1e-9, abs=1e-15)
        assert twice["nodes"][nid]["u"] == pytest.approx(ua.tolist(), rel=1e-9, abs=1e-15)
        assert stiff["nodes"][nid]["u"] == pytest.approx((ua / 2).tolist(), rel=1e-9, abs=1e-15)
    assert {bd["k"] for bd in stiff["bonds"]} == {275.0}


def test_no_load_is_zero_displacement(
    capsys: pytest.CaptureFixture[str], li_mao_path: Path
) -> None:
    doc = solve_json(capsys, str(li_mao_path))
    assert all(v["u"] == [0.0, 0.0] for v in doc["nodes"].values())


def test_nonlinear_flag_at_small_load_agrees(
    capsys: pytest.CaptureFixture[str], li_mao_path: Path
) -> None:
    lin = solve_json(capsys, str(li_mao_path), "--load", "11:0,-0.0049")
    nl = solve_json(capsys, str(li_mao_path), "--load", "11:0,-0.0049", "--nonlinear")
    for nid in lin["nodes"]:
        assert nl["nodes"][nid]["u"] == pytest.approx(lin["nodes"][nid]["u"], rel=1e-2, abs=1e-9)


def test_table_output(capsys: pytest.CaptureFixture[str], li_mao_path: Path) -> None:
    assert main(["solve", str(li_mao_path), "--load", "11:0,-0.049"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("li-mao-2024: 14 nodes, 28 bonds, loads: 11:0,-0.049")
    assert "fixed" in out and "k (N/m)" in out


@pytest.mark.parametrize(
    ("load", "reason"),
    [
        ("11", "expected NODE:F"),
        ("11:", "expected NODE:F"),
        ("11:0", "expected NODE:F"),
        ("11:0,1,2", "expected NODE:F"),
        ("x:0,1", "expected NODE:F"),
        ("11:a,b", "expected NODE:F"),
        ("11;0,1", "expected NODE:F"),
        ("11:nan,0", "finite"),
        ("11:0,inf", "finite"),
        ("11:1e308,1e308", "at most 1e+09 N"),
        ("99:0,1", "node 99 is not in"),
        ("1:0,1", "node 1 is fixed"),
    ],
)
def test_bad_load_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], li_mao_path: Path, load: str, reason: str
) -> None:
    assert main(["solve", str(li_mao_path), "--load", load, "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(f"insitu solve: error: --load {load!r}") and reason in err


@pytest.mark.parametrize("k", ["0", "-5", "nan", "inf", "1e308"])
def test_bad_k_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], li_mao_path: Path, k: str
) -> None:
    assert main(["solve", str(li_mao_path), "--load", "11:0,-0.049", "--k", k]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and "--k" in err


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """`insitu solve ... | head -1`: no BrokenPipeError traceback, the SIGPIPE status (141).
    The table (~0.5 MB) is larger than any pipe buffer, so the write must fail: no race."""
    import subprocess
    import sys

    net = tmp_path / "t40.toml"
    assert main(["network", "triangular", "--rows", "40", "-o", str(net)]) == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "insitu.cli.main", "solve", str(net), "--load", "1600:0,-0.049"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"triangular")
    proc.stdout.close()  # the reader is gone long before the table is written
    assert proc.wait(timeout=120) == 141
    assert proc.stderr.read() == b""


def test_nonlinear_json_reports_the_tangent(
    capsys: pytest.CaptureFixture[str], li_mao_path: Path
) -> None:
    doc = solve_json(capsys, str(li_mao_path), "--nonlinear", "--load", "11:0,-4.116")
    assert doc["tangent"]["saddles_left"] == 1 and doc["tangent"]["min_eigenvalue"] > 10
    assert "tangent" not in solve_json(capsys, str(li_mao_path), "--load", "11:0,-0.049")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'[network]\nname = "x\xff"\n', "not UTF-8 text (byte 0xff at 19)"),
        (None, "is a directory"),
    ],
)
def test_an_unreadable_network_file_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "net.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    assert main(["solve", str(path), "--load", "1:0,1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and reason in err


@pytest.mark.parametrize("target", ["dir", "missing/net.toml"])
def test_network_generation_refuses_an_unwritable_target_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, target: str
) -> None:
    (tmp_path / "dir").mkdir()
    before = sorted(tmp_path.rglob("*"))
    assert main(["network", "triangular", "--rows", "3", "-o", str(tmp_path / target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("is a directory" in err[0] or "cannot write" in err[0])
    assert sorted(tmp_path.rglob("*")) == before

