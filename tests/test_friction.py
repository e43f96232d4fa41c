"""Joint friction (emulator/friction.py), servo supply current (emulator/supply.py) and
`insitu bench friction`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from insitu.cli.main import main
from insitu.emulator import friction, supply
from insitu.emulator.hardware import IDEAL, PROFILES, REALISTIC
from insitu.emulator.world import World
from insitu.network.schema import load_network
from insitu.physics.linear import compatibility

LI_MAO = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"


@pytest.fixture(scope="module")
def net():
    return load_network(LI_MAO)


def _world(net, f: float, profile=IDEAL) -> World:
    return World(net, profile.with_(friction_n=f))


def test_profiles_have_no_friction_by_default():
    assert all(p.friction_n == 0.0 for p in PROFILES.values())


def test_zero_friction_is_the_frictionless_equilibrium(net):
    C = compatibility(net.positions, net.bonds)
    mask = net.clamped_dofs()
    f = np.zeros(net.n_nodes * net.dim)
    f[net.index(13) * 2 + 1] = -0.049
    u0 = np.full_like(f, 1e-4)
    u = friction.settle(C, net.k_init, mask, np.zeros_like(f), f, u0, 0.0)
    w = World(net, "ideal")
    w.bus(13).write("force", 1, -0.049)
    assert np.allclose(u, w.u(), rtol=1e-9, atol=1e-15)


def test_dead_zone_a_load_below_the_threshold_moves_nothing(net):
    w = _world(net, 0.06)  # 60 mN: more than the 49 mN load
    w.bus(13).write("force", 1, -0.049)
    w.settle()
    assert np.all(w.u() == 0.0) and np.all(w.elongation() == 0.0)


def test_friction_holds_back_and_leaves_hysteresis(net):
    free = _world(net, 0.0)
    fr = _world(net, 2e-3)
    for w in (free, fr):
        w.bus(13).write("force", 1, -0.049)
        w.settle()
    u_free, u_fr = free.u(), fr.u()
    dof = net.index(13) * 2 + 1
    assert u_fr[dof] < 0 and abs(u_fr[dof]) < abs(u_free[dof])  # stops short
    # residual force on every free DOF is within the friction threshold (Coulomb)
    C = compatibility(net.positions, net.bonds)
    K = C.T @ np.diag(fr.stiffness()) @ C.toarray()
    f = np.zeros_like(u_fr)
    f[dof] = -0.049
    r = (f - K @ u_fr)[~net.clamped_dofs()]
    assert np.max(np.abs(r)) <= 2e-3 * (1 + 1e-9)
    fr.bus(13).write("force", 1, 0.0)  # unload: the nodes do not come all the way back
    fr.settle()
    assert np.max(np.abs(fr.u())) > 0 and abs(fr.u()[dof]) < abs(u_fr[dof])


def test_supply_current_when_every_servo_moves(net):
    w = World(net, REALISTIC)
    for bd in net.boards:
        bus = w.bus(bd.id)
        for slot in range(len(bd.bonds)):
            bus.write("stiffness", slot, 2000)  # every servo to its far end at once
    p = supply.peak_after_update(w)
    assert p.servos == 28
    assert p.surge_a == pytest.approx(28 * supply.STALL_A)
    assert p.moving_a == pytest.approx(28 * supply.MOVING_A)
    assert p.frames >= int(REALISTIC.element.travel_s / REALISTIC.element.frame_s) // 2
    w.settle()
    now = w.now()
    assert supply.currents(w, now + 1.0).sum() == pytest.approx(28 * supply.IDLE_A)


def test_bench_friction_quick(tmp_path, capsys):
    assert main(["bench", "friction", "--quick", "--json", "--out", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["rows"]
    assert [r["friction_n"] for r in rows] == [0.0, 1e-3, 1e-2]
    for r in rows:
        assert 0.0 <= r["test_accuracy"] <= 1.0 and r["loadings"] > 0 and r["rig_s"] > 0
        assert r["supply_surge_a"] > 0 and -1 <= r["gradient_cosine"] <= 1
    cos = [r["gradient_cosine"] for r in rows]
    assert cos[0] > 0.999 and cos[2] < cos[0]  # 10 mN spoils the gradient
    assert (tmp_path / "friction.png").stat().st_size > 0
    assert (tmp_path / "friction.json").exists() and (tmp_path / "friction.md").exists()


def test_bench_friction_refuses_bad_levels(capsys):
    assert main(["bench", "friction", "--quick", "--levels", "0,-1"]) == 2
    assert "friction thresholds must be >= 0" in capsys.readouterr().err
