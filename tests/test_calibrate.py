"""Calibration (issue 8, item 3): emulated boards with deliberate gain/offset/map errors are
calibrated from the host, after which the in-situ gradient on li-mao-2024 is as good as on
ideal parts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from insitu.calibrate import calibrate
from insitu.emulator.gradcheck import insitu_gradient
from insitu.emulator.hardware import REALISTIC
from insitu.emulator.weights import EmulatedWeights
from insitu.network.schema import Port, load_network
from insitu.physics.linear import Equilibrium, compatibility
from insitu.rig.lab import emulated_rig

NET = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"

# realistic parts with errors well beyond the profile's: 15 % strain gains, 5x the bridge
# offsets, a 15 % / 5 % element map (slope / offset), 10 % force scales and 1 mN offsets;
# no noise, drift or settling, so that the comparison is decisive
MISCAL = REALISTIC.with_(
    name="miscalibrated",
    relax=False,
    strain=replace(
        REALISTIC.strain,
        sample_rate=None,
        adc_noise_counts=0.0,
        ambient_noise_m=0.0,
        drift_counts_per_s=0.0,
        gain_error=0.15,
        offset_counts=1e6,
    ),
    element=replace(REALISTIC.element, gain_error=0.15, offset_error=0.05, deadband_us=0.0),
    force=replace(REALISTIC.force, scale_error=0.10, offset_n=1e-3),
    disp=replace(REALISTIC.disp, noise_counts=0.0, quantise=False),
)


@pytest.fixture(scope="module")
def net():
    return load_network(NET)


def _case(net):
    def dof(node: int, axis: int) -> int:
        return net.dof(Port(node, axis))

    nd = net.n_nodes * net.dim
    load = np.zeros(nd)
    load[dof(11, 1)] = -0.049  # 5 g on the behaviour input
    load[dof(14, 0)] = 0.02
    f_adj = np.zeros(nd)
    f_adj[dof(8, 0)] = 0.01
    f_adj[dof(2, 0)] = -0.006
    f_adj[dof(3, 1)] = 0.004
    rng = np.random.default_rng(1)
    k = net.k_min + rng.uniform(0.3, 0.7, net.n_bonds) * (net.k_max - net.k_min)
    return load, f_adj, k


def _exact(net, k, load, f_adj) -> np.ndarray:
    """e·e_adj at the stiffness the host asked for (the model the trainer believes in)."""
    eq = Equilibrium(
        compatibility(net.positions, net.bonds),
        k,
        net.clamped_dofs(),
        node_ids=net.node_ids,
        dim=net.dim,
    )
    return eq.gradient(eq.solve(load), -f_adj)[0]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _cosine(net, rig, k, load, f_adj) -> float:
    rig.set_stiffness(k)
    rig.measure("forward", tag=0, settle_ms=500)  # the servos travel
    return _cos(insitu_gradient(rig, load, f_adj), _exact(net, k, load, f_adj))


def test_calibration_restores_the_ideal_gradient_cosine(net):
    load, f_adj, k = _case(net)
    _, rig = emulated_rig(net, "ideal")
    ideal = _cosine(net, rig, k, load, f_adj)

    lab, rig = emulated_rig(net, MISCAL, seed=3)
    before = _cosine(net, rig, k, load, f_adj)
    assert before < ideal - 0.05, (before, ideal)

    lab, rig = emulated_rig(net, MISCAL, seed=3)
    cal = calibrate(rig, EmulatedWeights(lab.world))
    assert cal.saved
    assert cal.monotone.all()
    world = lab.world
    for p, s in cal.force_scale.items():  # the actuators' true scale, found to 0.1 %
        assert s == pytest.approx(world.force_parts[net.dof(p)].scale, rel=1e-3)
    after = _cosine(net, rig, k, load, f_adj)
    print(f"cosine: ideal {ideal:.6f}, before {before:.6f}, after {after:.6f}")
    assert after >= ideal - 0.005, (after, ideal, before)
    # the bonds the encoders determine realise the stiffness asked for
    realised = world.stiffness() / k
    determined = np.abs(realised - 1) < 0.01
    assert determined.sum() >= net.n_bonds - 5, realised
    assert "NOT monotone" not in cal.report()
    # the strain gains are persisted on the boards: a power cycle boots with them
    bd = next(b for b in net.boards if len(b.bonds) > 1)
    lab.reboot(bd.id)
    node = lab.nodes[bd.id]
    assert [node.gain[s] for s in range(len(bd.bonds))] == pytest.approx(
        [cal.strain_gain[b] for b in bd.bonds], rel=1e-12
    )
    json.dumps(cal.as_json())


def test_cli_calibrate_reports_saves_and_records(net, capsys, tmp_path):
    from insitu.cli.main import main
    from insitu.store import RunStore

    db = tmp_path / "runs.sqlite"
    args = ["calibrate", str(NET), "--profile", "realistic", "--json", "--store", str(db)]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["saved"] and len(out["bonds"]) == net.n_bonds
    assert all(b["monotone"] for b in out["bonds"])
    with RunStore(db) as store:
        (run,) = store.runs()
        (ev,) = store.events(run["id"])
    assert ev["kind"] == "calibration"
    # --node: only that board's channels change
    assert main(["calibrate", str(NET), "--node", "7", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    mine = {net.bond_ids()[b] for bd in net.boards if bd.id == 7 for b in bd.bonds}
    for b in out["bonds"]:
        if (b["i"], b["j"]) not in mine:
            assert b["strain_scale"] == 1.0


def test_calibration_with_noise_and_settling(net):
    """The realistic profile as it is (noise, drift, settling, dead band): still better."""
    load, f_adj, k = _case(net)
    settle, n = int(10 * net.relaxation_time * 1000), 16

    def cosine(rig) -> float:
        rig.set_stiffness(k)
        rig.measure("forward", tag=0, settle_ms=500)
        g = insitu_gradient(rig, load, f_adj, settle_ms=settle, n=n)
        return _cos(g, _exact(net, k, load, f_adj))

    _, rig = emulated_rig(net, "realistic")
    before = cosine(rig)
    lab, rig = emulated_rig(net, "realistic")
    cal = calibrate(rig, EmulatedWeights(lab.world), settle_ms=settle, n=n)
    # the nodes hold it (identify) and apply it themselves: no host-side wrapper any more
    assert {rig.request(bd, "identify")["cal"] for bd in net.boards} == {cal.id}
    after = cosine(rig)
    assert after > max(before, 0.9999), (before, after)


def test_train_calibrates_emulated_boards_first(capsys, repo_root):
    """`insitu train --calibrate`: the boards are calibrated, then trained; ports refuse it."""
    from insitu.cli.main import main

    net = str(repo_root / "hardware/networks/li-mao-2024.toml")
    base = ["train", net, "--task", "behaviour", "--method", "insitu", "--epochs", "1",
            "--no-store", "--quiet", "--json"]  # fmt: skip
    assert main([*base, "--profile", "realistic", "--calibrate"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["final_loss"] < out["history"][0]["train_loss"]
    assert main([*base, "--calibrate", "--port", "/dev/null"]) == 2
    assert "--calibrate" in capsys.readouterr().err


def test_harsh_boards_whose_encoders_leave_a_combination_barely_open_calibrate() -> None:
    """Harsh boards, seed 0: one of the three gain combinations li-mao's encoders leave open
    had a singular value of 1.1e-3 of the largest, just above the old cut (1e-3), so it was
    'fitted' from noise and one gain came out -2.45 (calibration refused, `insitu train
    --calibrate` a traceback). With the cut at 1e-2 (the determined ones are >= 0.15) it is
    left open and settled from the force balance like the other two."""
    from insitu.calibrate import calibrate_emulated
    from insitu.network.schema import load_network
    from insitu.rig.lab import emulated_rig
    from insitu.trainers.insitu import settle_ms_for

    net = load_network("li-mao-2024")
    lab, rig = emulated_rig(net, "harsh", 0)
    cal = calibrate_emulated(lab, rig, settle_ms=settle_ms_for(net, "harsh"))
    gains = np.asarray(cal.strain_scale)
    assert np.all(gains > 0.5) and np.all(gains < 2.0), gains
