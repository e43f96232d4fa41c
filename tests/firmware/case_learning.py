from array import array

from insitu_node.learning import convention, spsa
from insitu_node.learning.optim import Optimiser
from insitu_node.learning.rules import ADJOINT, COUPLED, INCREMENTAL, Accumulator


def _close(a, b, rel=1e-9):
    assert abs(a - b) <= rel * max(abs(a), abs(b), 1e-300), (a, b)


E_FWD = ([1.5e-4, -2.0e-5, 3.3e-6], [-7.0e-5, 4.4e-4, 1.0e-6], [2.2e-5, 2.2e-5, -9.9e-5])
E_ADJ = ([3.0e-6, 1.0e-5, -2.5e-6], [8.0e-7, -6.0e-6, 4.0e-6], [-1.0e-6, 5.5e-6, 2.0e-6])


def test_adjoint_batch_mean_with_scale():
    acc = Accumulator(3, 4)
    sigma = 2.5
    for s in range(3):
        acc.store(10 + s, E_FWD[s])
    for s in range(3):
        acc.add(ADJOINT, acc.find(10 + s), E_ADJ[s], sigma, None)
    g = array("d", [0.0, 0.0, 0.0])
    acc.mean(g)
    for b in range(3):
        want = sum(sigma * E_FWD[s][b] * E_ADJ[s][b] for s in range(3)) / 3
        _close(g[b], want)


def test_incremental_and_contrastive():
    acc = Accumulator(3, 2)
    acc.store(0, E_FWD[0])
    acc.add(INCREMENTAL, 0, E_ADJ[0], 1.0, 1e-3)
    for b in range(3):
        _close(acc.g[b], E_FWD[0][b] * (E_ADJ[0][b] - E_FWD[0][b]) / 1e-3)
    acc.reset()
    assert acc.compatible(COUPLED)
    acc.add(COUPLED, 0, E_ADJ[0], 1.0, 0.1)
    for b in range(3):
        _close(acc.g[b], 0.5 * (E_ADJ[0][b] ** 2 - E_FWD[0][b] ** 2) / 0.1)
    assert not acc.compatible(ADJOINT)


def test_tag_slots_round_robin():
    acc = Accumulator(1, 2)
    acc.store(1, [1.0])
    acc.store(2, [2.0])
    acc.store(3, [3.0])  # evicts tag 1
    assert acc.find(1) < 0 and acc.forward(acc.find(3), 0) == 3.0
    acc.store(2, [5.0])  # same tag overwrites in place
    assert acc.forward(acc.find(2), 0) == 5.0


def _p(opt, lr, **kw):
    p = {"opt": opt, "lr": lr, "mu": 0.9, "b1": 0.9, "b2": 0.999, "eps": 1e-8}
    for k in kw:
        p[k] = kw[k]
    return p


def test_sgd_and_clipping():
    o = Optimiser(2)
    k = array("d", [137.5, 170.0])
    dk, frozen = o.step(k, [1.0, -5.0], [103.125] * 2, [171.875] * 2, _p("sgd", 1.0))
    assert k[0] == 136.5 and k[1] == 171.875 and frozen == 1 and dk == 1.875


def test_momentum():
    o = Optimiser(1)
    k = array("d", [150.0])
    lo, hi = [0.0], [1e9]
    o.step(k, [1.0], lo, hi, _p("momentum", 0.5))
    o.step(k, [1.0], lo, hi, _p("momentum", 0.5))
    _close(k[0], 150.0 - 0.5 * 1.0 - 0.5 * 1.9)


def test_adam_reference():
    o = Optimiser(1)
    k = array("d", [150.0])
    m = v = 0.0
    ref = 150.0
    for t in range(1, 4):
        g = 0.3 * t
        o.step(k, [g], [0.0], [1e9], _p("adam", 0.1))
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        step = (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)) ** 0.5 + 1e-8)
        ref = convention.descent(ref, step, 0.1)
        _close(k[0], ref)
    o.step(k, [1.0], [0.0], [1e9], _p("sgd", 1.0))  # switching optimiser restarts moments
    assert o.t == 0 and o.m[0] == 0.0


def test_spsa_signs_fixed_across_interpreters():
    signs = [spsa.sign(12345, i, i + 1) for i in range(16)]
    assert signs == [1, 1, 1, 1, 1, -1, 1, 1, -1, 1, 1, 1, -1, 1, -1, 1], signs
    assert spsa.gradient(2.0, 1.0, 0.5, -1) == -1.0
