"""`insitu train --port`: training the boards on serial ports (here: MicroPython processes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from insitu.emulator.mplab import MicroPythonLab
from insitu.network.schema import load_network

LI_MAO = "hardware/networks/li-mao-2024.toml"
TRAIN = ["train", LI_MAO, "--task", "behaviour", "--method", "insitu", "--profile", "ideal",
         "--epochs", "2", "--json", "--no-store", "--quiet",
         "--gradient-epochs", ""]  # fmt: skip  # (checks need the emulator's truth)


def _insitu(repo_root, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "insitu.cli.main", *TRAIN, *extra],
        capture_output=True, text=True, cwd=repo_root, timeout=240,
    )  # fmt: skip


@pytest.fixture(scope="module")
def lab(repo_root):
    with MicroPythonLab(load_network(repo_root / LI_MAO), "ideal") as lab:
        yield lab


def test_train_on_ports_matches_in_process_boards(lab, repo_root):
    ports = [a for p in lab.ports().values() for a in ("--port", p)]
    on_ports = _insitu(repo_root, "--family", "emu", "--uncalibrated", *ports)
    assert on_ports.returncode == 0, on_ports.stderr[-2000:]
    in_process = _insitu(repo_root)
    assert in_process.returncode == 0, in_process.stderr[-2000:]
    a, b = json.loads(on_ports.stdout), json.loads(in_process.stdout)
    assert a["measurements"] == b["measurements"] > 0
    # ideal parts and the same firmware: the same stiffness, whichever board runs it
    assert a["k_final"] == pytest.approx(b["k_final"], rel=1e-12)
    assert a["final_loss"] < a["history"][0]["train_loss"]


def test_superposed_on_ports_matches_in_process_boards(lab, repo_root):
    """The superposed method on MicroPython boards through their ports: the same loadings
    and stiffness as on in-process boards (it needs no op beyond forward and adjoint)."""
    ports = [a for p in lab.ports().values() for a in ("--port", p)]
    on_ports = _insitu(repo_root, "--method", "superposed", "--family", "emu", "--uncalibrated",
                       *ports)  # fmt: skip
    assert on_ports.returncode == 0, on_ports.stderr[-2000:]
    in_process = _insitu(repo_root, "--method", "superposed")
    assert in_process.returncode == 0, in_process.stderr[-2000:]
    a, b = json.loads(on_ports.stdout), json.loads(in_process.stdout)
    assert a["loadings"] == b["loadings"] > 0 and a["rig_seconds"] > 0
    assert a["k_final"] == pytest.approx(b["k_final"], rel=1e-12)
    assert a["final_loss"] < a["history"][0]["train_loss"]


def test_uncalibrated_boards_are_refused(lab, repo_root):
    ports = [a for p in lab.ports().values() for a in ("--port", p)]
    r = _insitu(repo_root, "--family", "emu", *ports)
    assert r.returncode == 2 and r.stdout == ""
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "no calibration" in err[0] and "--uncalibrated" in err[0], err


def test_a_missing_board_is_refused(lab, repo_root):
    ports = [a for p in list(lab.ports().values())[:-1] for a in ("--port", p)]
    r = _insitu(repo_root, "--family", "emu", *ports)
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "did not answer identify" in err[0]


def test_boards_with_other_configs_are_refused(lab, repo_root):
    """The boards run emu configs; the network's own family (pico) expects other ones."""
    ports = [a for p in lab.ports().values() for a in ("--port", p)]
    r = _insitu(repo_root, *ports)
    assert r.returncode == 2
    assert "config" in r.stderr.strip().splitlines()[-1]


def test_an_unknown_port_is_refused(repo_root):
    r = _insitu(repo_root, "--family", "emu", "--port", "/dev/insitu-no-such-port")
    assert r.returncode == 2
    assert "/dev/insitu-no-such-port" in r.stderr.strip().splitlines()[-1]


def test_gradcheck_on_ports_against_the_twin(lab, repo_root):
    """`insitu gradcheck --port`: the boards' gradient vs the twin's at the k they report."""
    ports = [a for p in lab.ports().values() for a in ("--port", p)]
    r = subprocess.run(
        [sys.executable, "-m", "insitu.cli.main", "gradcheck", LI_MAO, "--family", "emu",
         *ports, "--load", "11:0,-0.049", "--load", "14:0.02,0", "--adjoint", "8:0.01,0",
         "--adjoint", "2:-0.006,0", "--samples", "1", "--json"],
        capture_output=True, text=True, cwd=repo_root, timeout=240,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["cosine"] > 0.999999  # ideal parts: the twin is the truth
    assert set(out["calibration"].values()) == {None}  # these boards hold none (yet)
    bad = subprocess.run(
        [sys.executable, "-m", "insitu.cli.main", "gradcheck", LI_MAO, "--family", "emu",
         *ports, "--micropython", "--load", "11:0,-0.049", "--adjoint", "8:0.01,0"],
        capture_output=True, text=True, cwd=repo_root, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_a_notebook_session_on_ports_trains_as_in_process_boards(lab, repo_root, tmp_path):
    """insitu.Session(ports=...): the notebook API on boards reached through serial ports
    (the path a lab uses) trains and records exactly as on in-process boards."""
    pytest.importorskip("pandas", reason="pip install insitu[notebook]")
    import insitu

    store = tmp_path / "nb.sqlite"
    kw = {"epochs": 2, "gradient_epochs": "", "seed": 0}
    on_ports = insitu.Session(repo_root / LI_MAO, profile="ideal", family="emu", store=store,
                              ports=list(lab.ports().values()))  # fmt: skip
    a = on_ports.train("behaviour", "superposed", uncalibrated=True, **kw)
    b = insitu.Session(repo_root / LI_MAO, profile="ideal", store=store).train(
        "behaviour", "superposed", **kw)  # fmt: skip
    assert a.result.k_final == pytest.approx(b.result.k_final, rel=1e-12)
    assert a.info["config"]["ports"] == list(lab.ports().values())
    assert list(a.stiffness().iloc[-1, 1:]) == pytest.approx(list(a.result.k_final))


def test_calibrate_on_ports_then_train_and_power_cycle(lab, repo_root):
    """Calibrated through the ports (the emulator hangs the weights), trained through the
    ports, and a board power-cycled afterwards still holds the calibration (last: it changes
    the module's boards)."""
    from insitu.calibrate import calibrate
    from insitu.emulator.weights import EmulatedWeights
    from insitu.rig.lab import port_rig

    net = lab.network
    rig = port_rig(net, list(lab.ports().values()), family="emu")
    try:
        cal = calibrate(rig, EmulatedWeights(lab.world), levels=3, move_ms=0)
        assert cal.saved and cal.id is not None
        kr = rig.realised_stiffness()
        assert kr == pytest.approx(net.k_init, rel=1e-6)  # ideal parts: maps are the identity
    finally:
        rig.close()
    ports = [a for p in lab.ports().values() for a in ("--port", p)]
    r = _insitu(repo_root, "--family", "emu", *ports)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["measurements"] > 0
    board = next(iter(lab.boards.values()))
    board.power_cycle()
    rig = port_rig(net, list(lab.ports().values()), family="emu", timeout=10.0)
    try:
        assert rig.uncalibrated() == []
        assert {i.calibration for i in rig.boards.values()} == {cal.id}
    finally:
        rig.close()
