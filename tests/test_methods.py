"""The trainers other than in-situ backprop, on ideal emulated boards (docs/methods.md)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from insitu.network.generate import to_toml, triangular
from insitu.network.schema import Network, load_network, parse_network
from insitu.physics.linear import compatibility
from insitu.rig import Rig, emulated_rig, open_rig
from insitu.tasks import MSE, Task, make_task
from insitu.trainers import METHODS, coupled, fd, method_module, pat, spsa
from insitu.trainers.common import TrainConfig
from insitu.trainers.insilico import Model
from insitu.trainers.insitu import Phases
from insitu.trainers.insitu import accumulate_batch as insitu_batch

LI_MAO = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"


@pytest.fixture(scope="module")
def net() -> Network:
    return load_network(LI_MAO)


def _states(lab, net: Network, task, idx):
    """Exact free states, MSE/loss gradients of the batch from the emulated world's truth."""
    ind, outd = net.iodofs(task.io)
    eq = lab.world.equilibrium()
    out = []
    for s in idx:
        f = np.zeros(net.n_nodes * net.dim)
        f[ind] = task.inputs[s]
        u = eq.solve(f)
        out.append((f, u))
    return eq, ind, outd, out


def _contrast(rig, task, idx, eta, how="target", symmetric=False) -> np.ndarray:
    rig.reset()
    b = coupled.accumulate_batch(rig, task, idx, eta, Phases(), how, symmetric)
    g, count = rig.accumulated()
    assert count == b.count == len(idx) * (2 if symmetric else 1)
    return g / count


def test_coupled_matched_nudge_tends_to_the_exact_gradient(net):
    """Compliance-matched nudge: contrast = exact dL/dk + (η/2)·s·e_adj², so rel. error ∝ η;
    the symmetric (±η) nudge cancels the bias of a linear network exactly."""
    task = make_task("regression", net, 0)
    lab, rig = emulated_rig(net, "ideal")
    rig.tare()
    idx = task.train[:3]
    exact = Model(net, task).batch_gradient(rig.stiffness(), idx)[1]
    rel = {}
    for eta in (0.1, 0.01, 0.001):
        g = _contrast(rig, task, idx, eta, "matched")
        rel[eta] = np.linalg.norm(g - exact) / np.linalg.norm(exact)
    assert rel[0.001] < 1e-3
    assert rel[0.1] / rel[0.01] == pytest.approx(10.0, rel=1e-3)  # the bias is linear in η
    assert rel[0.01] / rel[0.001] == pytest.approx(10.0, rel=1e-3)
    g_sym = _contrast(rig, task, idx, 0.1, "matched", symmetric=True)
    assert np.linalg.norm(g_sym - exact) / np.linalg.norm(exact) < 1e-8


def test_coupled_target_nudge_limit_and_bias(net):
    """Classic coupled learning (clamp at u_F + η(u_T − u_F)): the contrast is exactly
    c0 + (η/2)·σ·e_w², with c0 the adjoint gradient for the clamp's reaction force
    G⁻¹(u_T − u_F) and e_w the elongations of that clamp alone; c0 is the exact MSE gradient
    preconditioned by the output stiffness G⁻¹ — a descent direction, not the gradient."""
    task = make_task("behaviour", net, 0)
    lab, rig = emulated_rig(net, "ideal")
    rig.tare()
    idx = task.train
    eq, ind, outd, states = _states(lab, net, task, idx)
    n_out = outd.size
    C = compatibility(net.positions, net.bonds)
    s = task.loss.unit**2 * n_out / 2.0  # δ = −s ∂L/∂u for this MSE; the nodes get σ = 1/s
    G = np.zeros((n_out, n_out))
    for j in range(n_out):
        f = np.zeros(net.n_nodes * net.dim)
        f[outd[j]] = 1.0
        G[:, j] = eq.solve(f)[outd]
    c0 = np.zeros(net.n_bonds)
    bias = np.zeros(net.n_bonds)
    mse = np.zeros(net.n_bonds)
    for (f, u), t in zip(states, task.targets[idx], strict=True):
        delta = t - u[outd]
        r = np.zeros_like(u)
        r[outd] = np.linalg.solve(G, delta)  # the force that displaces the outputs by δ
        c0 += lab.world.exact_gradient(-r, f=f) / s / len(idx)
        ew = C @ eq.solve(r)
        bias += 0.5 * ew**2 / s / len(idx)
        g_u = np.zeros_like(u)
        g_u[outd] = task.loss_grad(u[outd], t)[1]
        mse += lab.world.exact_gradient(g_u, f=f) / len(idx)
    for eta in (0.1, 0.01):
        g = _contrast(rig, task, idx, eta, "target")
        assert np.allclose(g, c0 + eta * bias, rtol=1e-6, atol=1e-9 * np.abs(c0).max())
    assert np.all(bias >= 0)  # the finite-η bias pushes every stiffness down
    cos = c0 @ mse / np.linalg.norm(c0) / np.linalg.norm(mse)
    assert 0.5 < cos < 0.999  # descent, but not parallel: two coupled outputs (measured 0.886)


def test_fd_gradient_equals_the_exact_gradient(net):
    """Central differences with one element step (0.06875 N/m, so the difference of two `set`s
    is exact): truncation ~ (h/k)² ≈ 2.5e-7 times the curvature ratio (measured 1.5e-6);
    forward differences with h ≈ 1 N/m: error ∝ h (measured 1.8 %)."""
    task = make_task("iris", net, 0)
    lab, rig = emulated_rig(net, "ideal")
    rig.tare()
    idx = task.train[:2]
    k = rig.stiffness()
    exact = Model(net, task).batch_gradient(k, idx)[1]
    _, g = fd.gradient(rig, task, idx, k, Phases(), h=0.06875, central=True)
    assert np.linalg.norm(g - exact) / np.linalg.norm(exact) < 1e-4
    _, g1 = fd.gradient(rig, task, idx, k, Phases(), h=1.0)
    _, g3 = fd.gradient(rig, task, idx, k, Phases(), h=0.3)
    e1 = np.linalg.norm(g1 - exact) / np.linalg.norm(exact)
    e3 = np.linalg.norm(g3 - exact) / np.linalg.norm(exact)
    assert e1 < 0.05
    assert e1 / e3 == pytest.approx(1.03125 / 0.275, rel=0.15)  # first order in the step


def test_spsa_descends_with_the_predicted_loadings(net):
    task = make_task("behaviour", net, 0)
    cfg = TrainConfig(epochs=60, batch=1, lr=1.0, seed=1)
    r = spsa.train(net, task, cfg, rig=_rig(net, cfg), profile="ideal", eval_every=60)
    assert r.final.train_loss < 0.5 * r.history[0].train_loss
    assert r.step_loadings == [spsa.loadings_per_update(1)] * 60
    # tare + 2 scores of (1 train + 1 test) samples + learning
    assert r.measurements == 1 + 2 * 2 + 2 * 60


@pytest.mark.parametrize("method", ["pat", "insilico-write", "coupled"])
def test_method_reduces_the_loss(net, method):
    task = make_task("behaviour", net, 0)
    cfg = TrainConfig(epochs=30, batch=1, lr=1.0)
    r = method_module(method).train(
        net, task, cfg, rig=_rig(net, cfg), profile="ideal", eval_every=30
    )
    assert r.final.train_loss < 0.1 * r.history[0].train_loss
    assert method in METHODS


def _rig(net: Network, cfg: TrainConfig) -> Rig:
    """Ideal in-process boards seeded as the run (trainers take a rig; they never open one)."""
    return open_rig(net, profile="ideal", seed=cfg.seed)[1]


def _lattice() -> Network:
    return parse_network(to_toml(triangular(11, n_inputs=1, n_outputs=2)), "triangular-11x11")


def test_loadings_per_update_insitu_vs_fd(net):
    """In situ: 2·B loadings whatever the bonds; FD: B per bond plus B for the base loss.

    li-mao-2024: the full FD step (B·29). The 320-bond lattice: in situ in full, FD on 6 bonds
    (every bond costs the emulator a new stiffness state and a dense rigidity check, ~1 s a bond
    on a loaded 2-core machine), which pins the per-bond cost; the full step is B·321.
    """
    big = _lattice()
    assert big.n_bonds >= 300
    pull = Task(
        name="pull",
        io="default",
        inputs=np.array([[-0.049], [-0.03]]),
        targets=np.array([[-1e-3, -1e-3], [-5e-4, -5e-4]]),
        train=np.array([0, 1]),
        test=np.array([0]),
        loss=MSE(),
    )
    cases = ((net, make_task("regression", net, 0), None), (big, pull, [0, 50, 100, 150, 200, 319]))
    B = 2
    for network, task, bonds in cases:
        lab, rig = emulated_rig(network, "ideal")
        rig.tare()
        io = network.io_set(task.io)
        idx = task.train[:B]
        before = rig.counters.loadings
        X, Y = task.inputs[idx], task.targets[idx]
        insitu_batch(rig, io.inputs, io.outputs, X, Y, task.loss_grad, Phases())
        assert rig.counters.loadings - before == 2 * B
        rig.reset()
        before = rig.counters.loadings
        fd.gradient(rig, task, idx, rig.stiffness(), Phases(), bonds=bonds)
        spent = rig.counters.loadings - before
        n = network.n_bonds if bonds is None else len(bonds)
        assert spent == B * (n + 1)
    assert fd.loadings_per_update(big.n_bonds, B) == B * 321
    assert fd.loadings_per_update(net.n_bonds, B) == B * 29


def test_one_step_of_each_method_costs_what_it_predicts(net):
    task = make_task("regression", net, 0)
    B, n_out = 2, 4
    cfg = TrainConfig(epochs=1, batch=B, lr=0.5)
    train = np.array(task.train[:4])
    task = replace(task, train=train, test=train[:1])
    want = {
        "coupled": coupled.loadings_per_update(B, n_out),
        "spsa": spsa.loadings_per_update(B),
        "pat": pat.loadings_per_update(B),
    }
    for m, per in want.items():
        r = method_module(m).train(net, task, cfg, rig=_rig(net, cfg), profile="ideal")
        assert r.step_loadings == [per, per], m
    r = coupled.train(
        net, task, cfg, rig=_rig(net, cfg), profile="ideal", nudge="matched", symmetric=True
    )
    assert r.step_loadings == [coupled.loadings_per_update(B, n_out, "matched", True)] * 2
