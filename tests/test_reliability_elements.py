"""Item 5 of docs/reliability.md, stiffness elements: a stuck element is found by its node's
response check, reported, its bond frozen, and training goes on with the rest.

In-process emulated boards of the Li & Mao network; the stuck element is the emulator's
(``faults.stuck_element``: the servo ignores every command, k stays where it is).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from insitu.cli.main import main
from insitu.emulator import faults
from insitu.emulator.inprocess import InProcessLab
from insitu.network.schema import Network, load_network
from insitu.rig.lab import expected_configs
from insitu.rig.selftest import check_elements
from insitu.rig.session import Rig, RigError
from insitu.tasks import make_task
from insitu.trainers import insitu
from insitu.trainers.common import TrainConfig

LI_MAO = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"


@pytest.fixture(scope="module")
def net() -> Network:
    return load_network(LI_MAO)


def _rig(net: Network, profile: str, seed: int = 0) -> tuple[InProcessLab, Rig]:
    lab = InProcessLab(net, profile, seed=seed)
    rig = Rig(net, lab.link(), configs=expected_configs(net, lab.calibration))
    rig.connect()
    return lab, rig


@pytest.mark.parametrize("profile", ["ideal", "realistic", "harsh"])
def test_every_working_element_responds(net, profile):
    """No false alarm: on healthy boards every bond's element is judged and responds."""
    lab, rig = _rig(net, profile)
    report = check_elements(rig)
    print("\n" + "\n".join(report.lines()))
    assert report.stuck == [] and report.unloaded == []
    assert len(report.ok) == net.n_bonds
    assert not any(e.get("ev") == "fault" for _, e in rig.events)
    # every element was put back where it was
    assert np.array_equal(rig.stiffness(), net.k_init)
    for c in report.checks:  # probe at the farther bound (k_min here); softer: longer
        assert (c.k, c.kp) == (pytest.approx(137.5), pytest.approx(103.125)), c
        assert abs(c.e1) > abs(c.e0) > 1e-5 and c.noise < 1e-6, c
    ratios = [c.e1 / c.e0 for c in report.checks]
    print(f"{profile}: |e1/e0| from {min(ratios):.3f} to {max(ratios):.3f}")


def test_stuck_element_found_frozen_and_training_goes_on(net):
    lab, rig = _rig(net, "realistic")
    bd = next(b for b in net.boards if len(b.bonds) >= 2)
    bond = bd.bonds[1]
    faults.stuck_element(lab.world, bd.id, 1)
    report = check_elements(rig)
    text = "\n".join(report.lines())
    print("\n" + text)
    assert report.stuck == [bond] and report.unloaded == []
    assert len(report.ok) == net.n_bonds - 1
    kinds = [(a, e["kind"], e["ch"]) for a, e in rig.events if e.get("ev") == "fault"]
    assert kinds == [(str(bd.id), "element", 1)]
    ids = net.node_ids
    name = f"bond {ids[net.bonds[bond, 0]]}-{ids[net.bonds[bond, 1]]} (#{bond})"
    assert f"{name} on board {bd.id} (node {bd.node}): stiffness element does not respond" in text
    # a second check of that bond is refused by its node: it knows the element is bad; a
    # second self-test reports it as not checked instead of failing
    with pytest.raises(RigError, match="element"):
        rig.check_element(bond)
    again = check_elements(rig, bonds=[bond, 0])
    assert again.faulty == [bond] and again.ok == [0] and again.frozen == [bond]
    assert "not checked, its node holds a element fault" in "\n".join(again.lines())

    t = make_task("iris", net, 0)
    task = dataclasses.replace(t, train=t.train[:32], test=t.test[:8])
    r = insitu.train(net, task, TrainConfig(epochs=2, seed=0, lr=3.0), rig=rig, eval_every=2)
    assert r.k_final[bond] == r.k_init[bond]  # frozen: never commanded again
    others = np.setdiff1d(np.arange(net.n_bonds), [bond])
    assert np.count_nonzero(r.k_final[others] != r.k_init[others]) >= len(others) - 3
    faults_text = "\n".join(r.faults)
    print(faults_text)
    said = f"node {bd.node}): bond {name.split()[1]}: stiffness element does not respond"
    assert said in faults_text
    assert f"{name} frozen, no more updates" in faults_text


def test_check_elements_refuses_bad_arguments(net):
    lab, rig = _rig(net, "ideal")
    with pytest.raises(ValueError, match="no bond 28"):
        check_elements(rig, bonds=[28])
    with pytest.raises(ValueError, match="force must be > 0"):
        check_elements(rig, force=0.0)
    with pytest.raises(RigError, match="k"):
        rig.check_element(0, k=1e6)  # outside the bond's range: the node says which field
    assert np.array_equal(rig.stiffness(), net.k_init)


def test_check_command(net, capsys, tmp_path):
    argv = ["check", str(LI_MAO), "--quiet"]
    png = tmp_path / "check.png"
    assert main([*argv, "--stuck", "2:1", "--stuck", "11:0", "--json", "--plot", str(png)]) == 1
    assert png.stat().st_size > 10_000  # exit 1: found some; the network drawn by verdict
    rep = json.loads(capsys.readouterr().out)
    b2, b11 = (next(b for b in net.boards if b.id == i) for i in (2, 11))
    assert rep["stuck"] == sorted([b2.bonds[1], b11.bonds[0]])
    assert main([*argv, "--profile", "ideal", "--bonds", "0,5"]) == 0
    assert "2 bonds, 2 respond, 0 stuck" in capsys.readouterr().out
    for bad, said in ((["--stuck", "99:0"], "no board 99"), (["--stuck", "2:7"], "slots 0..1"),
                      (["--stuck", "x"], "BOARD:SLOT"), (["--bonds", "3,40"], "not [40]"),
                      (["--force", "-1"], "--force must be > 0")):
        assert main([*argv, *bad]) == 2
        assert said in capsys.readouterr().err


def test_train_checks_elements_first_and_logs_the_report(tmp_path, capsys):
    from insitu.store import RunStore

    db = tmp_path / "s.sqlite"
    argv = ["train", str(LI_MAO), "--task", "iris", "--method", "insitu", "--profile", "ideal",
            "--epochs", "1", "--gradient-epochs", "", "--check-elements", "--store", str(db),
            "--json", "--quiet"]
    assert main(argv) == 0
    capsys.readouterr()
    with RunStore(db) as st:
        events = [e for e in st.events(1) if e["kind"] == "elements"]
        assert st.run(1)["config"]["check_elements"] is True
    assert len(events) == 1 and len(events[0]["detail"]["ok"]) == 28
    assert events[0]["detail"]["stuck"] == []
    assert main(["train", str(LI_MAO), "--task", "iris", "--check-elements", "--no-store"]) == 2
    assert "drop --check-elements" in capsys.readouterr().err


def test_check_keeps_every_board_awake_and_puts_timeouts_back(net):
    """A check talks to one board for seconds; a board deployed with a 3 s host-silence
    timeout (the one holding the load among them) must not go safe meanwhile."""
    lab, rig = _rig(net, "realistic")
    rig.broadcast("configure", {"timeout_ms": 3000})
    report = check_elements(rig)  # one check: 2 x (2.5 s settle + 1 s sampling limit)
    assert len(report.ok) == net.n_bonds
    assert {p["timeout_ms"] for p in rig.broadcast("configure").values()} == {3000}
