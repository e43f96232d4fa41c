"""In-silico trainer: exact batch gradient, bounds, determinism, learning, CLI contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from insitu.cli.main import main
from insitu.network.schema import load_network
from insitu.physics.linear import Equilibrium
from insitu.tasks import make_task
from insitu.trainers import METHODS, method_module
from insitu.trainers.common import Callback, TrainConfig
from insitu.trainers.insilico import Model, train
from insitu.trainers.optim import Optimiser

NET = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"


@pytest.fixture(scope="module")
def net():
    return load_network(NET)


@pytest.mark.parametrize("name", ["iris", "regression", "behaviour", "behaviour-ratio"])
def test_batch_gradient_matches_finite_differences(net, name):
    task = make_task(name, net, seed=1)
    model = Model(net, task)
    rng = np.random.default_rng(5)
    k = rng.uniform(net.k_min, net.k_max)
    idx = task.train[:16]
    _, g = model.batch_gradient(k, idx)

    def loss(kk):
        return model.batch_gradient(kk, idx)[0]

    h = 1e-4  # N/m; central differences, error O(h^2)
    fd = np.array([(loss(k + h * e) - loss(k - h * e)) / (2 * h) for e in np.eye(k.size)])
    assert np.linalg.norm(g - fd) / np.linalg.norm(fd) < 1e-6


def test_dense_solver_agrees_with_sparse_equilibrium(net):
    task = make_task("iris", net, 0)
    model = Model(net, task)
    k = np.random.default_rng(2).uniform(net.k_min, net.k_max)
    dense = model.equilibrium(k)
    sparse = Equilibrium(model.C, k, model.clamped)
    idx = task.train[:8]
    u_d, u_s = model.forward(dense, idx), model.forward(sparse, idx)
    assert np.allclose(u_d, u_s, rtol=1e-10, atol=1e-18)
    dL = np.random.default_rng(3).normal(size=u_d.shape)
    assert np.allclose(dense.gradient(u_d, dL)[0], sparse.gradient(u_s, dL)[0], rtol=1e-9)


class Recorder(Callback):
    def __init__(self):
        self.steps, self.epochs, self.ended = [], [], None

    def on_step(self, info):
        self.steps.append(info)

    def on_epoch(self, record):
        self.epochs.append(record)

    def on_end(self, result):
        self.ended = result


def test_bounds_respected_at_every_step(net):
    task = make_task("regression", net, 0)  # pushes most bonds onto k_min
    rec = Recorder()
    r = train(net, task, TrainConfig(epochs=5, batch=16, lr=50.0, seed=0), callbacks=[rec])
    assert rec.steps and any(s.at_bound for s in rec.steps)
    for s in rec.steps:
        assert np.all(s.k >= net.k_min) and np.all(s.k <= net.k_max)
    assert len(rec.epochs) == 6 and rec.ended is r  # epoch 0 = the initial state
    assert r.steps == len(rec.steps) == 5 * int(np.ceil(70 / 16))


def test_optimiser_projection_and_sgd_sign():
    opt = Optimiser(3, "sgd", lr=10.0)
    k, rep = opt.step(np.array([1.0, 1.0, 1.0]), np.array([1.0, -1.0, 0.0]), 0.5, 5.0)
    assert np.allclose(k, [0.5, 5.0, 1.0]) and rep.at_bound == 2  # descent, then clip


def test_deterministic_per_seed(net):
    task = make_task("iris", net, 4)
    cfg = TrainConfig(epochs=3, seed=4, lr=3.0)
    a, b = train(net, task, cfg), train(net, task, cfg)
    assert np.array_equal(a.k_final, b.k_final)
    c = train(net, task, TrainConfig(epochs=3, seed=5, lr=3.0))
    assert not np.array_equal(a.k_final, c.k_final)


def test_short_iris_run_beats_chance(net):
    task = make_task("iris", net, 0)
    r = train(net, task, TrainConfig(epochs=15, batch=16, lr=3.0, seed=0))
    assert r.history[0].train_accuracy is not None
    assert r.final.train_accuracy > 0.6 and r.final.test_accuracy > 0.6
    assert r.final.train_loss < r.history[0].train_loss


def test_method_registry():
    assert "insilico" in METHODS and method_module("insilico").train is train


# ------------------------------------------------------------------------------------- CLI


def test_cli_json_keys(capsys):
    argv = ["train", str(NET), "--task", "iris", "--method", "insilico"]
    rc = main(argv + ["--epochs", "2", "--seed", "1", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("train_accuracy", "test_accuracy", "final_loss"):
        assert isinstance(out[key], float)
    assert len(out["history"]) == 3 and len(out["k_final"]) == 28


def test_cli_readable_and_repeat(capsys):
    rc = main(["train", str(NET), "--task", "behaviour", "--epochs", "3", "--repeat", "2"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "mean" in text and "behaviour" in text


def test_cli_bad_csv_exits_2_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("11:y,label\n-0.01,0\nnot-a-number,1\n")
    before = sorted(tmp_path.iterdir())
    rc = main(["train", str(NET), "--task-csv", str(bad), "--epochs", "1"])
    cap = capsys.readouterr()
    assert rc == 2 and cap.out == ""
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "not a number" in lines[0]
    assert sorted(tmp_path.iterdir()) == before  # nothing written


def test_cli_csv_task_trains(tmp_path, capsys):
    f = tmp_path / "reg.csv"
    F = np.linspace(-0.05, 0.05, 10)
    f.write_text("11:y,u:13:y,u:14:y\n" + "".join(f"{x},{0.01 * x},{0.01 * x}\n" for x in F))
    rc = main(["train", str(NET), "--task-csv", str(f), "--epochs", "2", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["train_accuracy"] is None and out["final_loss"] >= 0
