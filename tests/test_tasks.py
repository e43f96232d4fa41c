"""Tasks: shapes, seeded splits, loss gradients against finite differences, user tasks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from insitu.network.schema import load_network
from insitu.tasks import (
    MSE,
    AbsCrossEntropy,
    Task,
    TaskError,
    from_callable,
    from_csv,
    make_task,
    split,
)
from insitu.tasks.reference import MAX_FORCE, REGRESSION_F_MAX

NET = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"


@pytest.fixture(scope="module")
def net():
    return load_network(NET)


@pytest.mark.parametrize(
    "name, n, n_in, n_out, n_train",
    [("iris", 150, 4, 3, 105), ("regression", 100, 1, 4, 70), ("behaviour", 1, 1, 2, 1)],
)
def test_reference_shapes_and_splits(net, name, n, n_in, n_out, n_train):
    t = make_task(name, net, seed=3)
    ins, outs = net.iodofs(t.io)
    assert t.inputs.shape == (n, n_in) == (n, ins.size)
    assert t.targets.shape[0] == n
    assert t.train.size == n_train
    if name != "behaviour":
        assert t.train.size + t.test.size == n
        assert not set(t.train) & set(t.test)
    U = np.zeros((2, outs.size)) + 1e-4
    loss, g = t.value_and_grad(U, t.train[:2] if t.train.size > 1 else np.array([0, 0]))
    assert loss.shape == (2,) and g.shape == (2, n_out)


def test_splits_deterministic_per_seed(net):
    a, b, c = (make_task("iris", net, s) for s in (7, 7, 8))
    assert np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)
    assert not np.array_equal(a.train, c.train)
    r1, r2 = make_task("regression", net, 4), make_task("regression", net, 4)
    assert np.array_equal(r1.inputs, r2.inputs) and np.array_equal(r1.train, r2.train)


def test_iris_forces_and_stratified_split(net):
    t = make_task("iris", net, 0)
    assert np.all(t.inputs < 0) and np.isclose(t.inputs.min(), -MAX_FORCE)  # -y, at most 5 g
    assert np.allclose(t.inputs.min(axis=0), -MAX_FORCE)  # each column's maximum is 5 g
    assert np.bincount(t.targets[t.train]).tolist() == [35, 35, 35]
    assert t.classes == ("setosa", "versicolor", "virginica")
    u = make_task("iris", net, 0, stratify=False)
    assert u.train.size == 105


def test_regression_targets_sign(net):
    t = make_task("regression", net, 0)
    assert np.all(np.abs(t.inputs) <= REGRESSION_F_MAX)
    # u_y follows F: a -y weight moves the node down
    assert np.allclose(t.targets[:, 1], 0.016 * t.inputs[:, 0])
    assert np.allclose(t.targets, t.inputs * np.array([0.0, 0.016, 0.004, 0.016]))


def test_split_stratified_and_plain():
    y = np.repeat([0, 1, 2], [10, 20, 30])
    tr, te = split(60, 1, labels=y)
    assert np.bincount(y[tr]).tolist() == [7, 14, 21]
    tr2, te2 = split(60, 1)
    assert tr2.size == 42 and te2.size == 18


def _fd_grad(loss_fn, U, h=1e-10):
    g = np.zeros_like(U)
    for i in np.ndindex(U.shape):
        d = np.zeros_like(U)
        d[i] = h
        g[i] = (loss_fn(U + d) - loss_fn(U - d))[i[0]] / (2 * h)
    return g


@pytest.mark.parametrize(
    "loss, targets",
    [
        (MSE(), np.array([[1e-4, -2e-4, 0.0], [3e-4, 1e-4, -1e-4]])),
        (AbsCrossEntropy(1.0), np.array([0, 2])),
        (AbsCrossEntropy(5.0), np.array([1, 0])),
    ],
)
def test_loss_gradients_match_finite_differences(loss, targets):
    rng = np.random.default_rng(0)
    U = rng.uniform(-5e-4, 5e-4, size=(2, 3))
    U[np.abs(U) < 5e-5] = 1e-4  # keep away from the kink of |u|
    value, g = loss.value_and_grad(U, targets)
    fd = _fd_grad(lambda V: loss.value_and_grad(V, targets)[0], U, h=1e-10)
    assert np.allclose(g, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())


def test_abs_cross_entropy_is_the_papers_at_sharpness_one():
    U = np.array([[1e-4, -3e-4, 2e-4]])
    loss, g = AbsCrossEntropy(1.0).value_and_grad(U, np.array([1]))
    a = np.abs(U[0])
    assert np.isclose(loss[0], -np.log(a[1] / a.sum()))
    expect = np.sign(U[0]) / a.sum()
    expect[1] -= np.sign(U[0, 1]) / a[1]
    assert np.allclose(g[0], expect)
    assert AbsCrossEntropy(1.0).accuracy(U, np.array([1])) == 1.0


def test_per_sample_loss_grad_matches_batch(net):
    t = make_task("iris", net, 0)
    U = np.array([[1e-4, -2e-4, 3e-4], [2e-4, 1e-4, -1e-4]])
    idx = t.train[:2]
    batch_loss, batch_g = t.value_and_grad(U, idx)
    one_loss, one_g = t.loss_grad(U[1], t.targets[idx[1]])
    assert np.isclose(one_loss, batch_loss[1]) and np.allclose(one_g, batch_g[1])


# ----------------------------------------------------------------------------- user tasks


def test_csv_classification_and_regression(net, tmp_path):
    p = tmp_path / "two.csv"
    rows = ["12:y,14:y,13:y,10:y,label"]  # columns in any order; io set found by its ports
    rows += [f"-0.01,-0.02,-0.03,-0.0{i % 3 + 1},{['a', 'b', 'c'][i % 3]}" for i in range(12)]
    p.write_text("\n".join(rows) + "\n")
    t = from_csv(p, net, seed=1)
    assert t.io == "iris" and t.classes == ("a", "b", "c")
    assert np.allclose(t.inputs[0], [-0.02, -0.01, -0.03, -0.01])  # io order 14, 12, 13, 10
    r = tmp_path / "reg.csv"
    r.write_text("11:y,u:13:y,u:14:y\n-0.01,-1e-4,-1e-4\n-0.02,-2e-4,-2e-4\n0.01,1e-4,1e-4\n")
    t2 = from_csv(r, net)
    assert t2.io == "behaviour" and isinstance(t2.loss, MSE) and t2.targets.shape == (3, 2)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "empty file"),
        ("11:y,label\n-0.01,0\n", "need at least 2"),
        ("11:y,label\n-0.01,0\nabc,1\n", "not a number"),
        ("99:y,label\n-0.01,0\n-0.02,1\n", "no io set"),
        ("11:y\n-0.01\n-0.02\n", "need either"),
        ("11:q,label\n-0.01,0\n-0.02,1\n", "expected an input port"),
        ("11:y,label\n-0.01,0,5\n-0.02,1\n", "fields"),
        ("14:y,12:y,13:y,10:y,label\n-1,-1,-1,-1,0\n-2,-2,-2,-2,7\n", "labels must name"),
        ("11:y,label\n-0.01,0\n-0.02,1\n", "choose one with --io"),
    ],
)
def test_bad_csv_names_file_and_problem(net, tmp_path, text, problem):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(TaskError) as exc:
        from_csv(p, net)
    msg = str(exc.value)
    assert str(p) in msg and problem in msg and "\n" not in msg


def test_missing_csv(net, tmp_path):
    with pytest.raises(TaskError, match="no such file"):
        from_csv(tmp_path / "nope.csv", net)


def good_task(net, seed):  # used by test_callable_task through module:function
    return make_task("behaviour", net, seed)


def test_callable_task(net):
    t = from_callable(f"{__name__}:good_task", net, 2)
    assert isinstance(t, Task) and t.io == "behaviour"
    with pytest.raises(TaskError, match="no function"):
        from_callable(f"{__name__}:nothing_here", net)
    with pytest.raises(TaskError, match="module:function"):
        from_callable("no_colon", net)
