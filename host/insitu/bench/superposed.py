"""Superposed in-situ backprop against the per-sample rule (issue 14): gradient and rig time.

Gradient rows: one step's gradient as the nodes accumulate it (the update intercepted) on
in-process li-mao-2024 boards, against the emulated world's exact gradient (cosine and
relative error), for the per-sample rule (2·B loadings) and for the superposed method with
its noise options (plain, ±F signed pairs, repeated groups) at a mini-batch of 16 and at the
full Iris training set (105), on ideal boards and on calibrated realistic ones (the boards a
lab trains: ``insitu calibrate``). It answers how many loadings keep the cosine ≥ 0.999.
Ideal boards get no repeated groups: they have no noise to average, and eight bit-identical
readings in a row (a bond the port loadings barely stretch, loaded the same way twice) trip
the node's stuck-sensor check (insitu_node/health.py), which freezes that bond.

Training rows: Iris on calibrated realistic boards, in situ and superposed (batch 16, the
task's defaults), test accuracy, loadings and the boards' rig time (``rig_seconds``).
``--quick``: one seed, 3 epochs: a smoke run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

HELP = "superposed in-situ backprop vs the per-sample rule: gradient cosine, loadings, rig time"

NETWORK = "li-mao-2024"
# (label, options or None for the per-sample rule)
MODES: tuple[tuple[str, dict[str, Any] | None], ...] = (
    ("per-sample", None),
    ("superposed", {}),
    ("superposed, signed", {"signed": True}),
    ("superposed, 2 groups", {"repeats": 2}),
    ("superposed, 3 groups", {"repeats": 3}),
)
BATCHES = (16, 105)
PROFILES = ("ideal", "realistic")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, help="seeds per row (default 3; 1 with --quick)")
    p.add_argument("--epochs", type=int, help="training epochs (default 100; 3 with --quick)")


def _boards(net: Any, profile: str, seed: int) -> tuple[Any, Any, Any]:
    from insitu.calibrate import calibrate_emulated
    from insitu.rig.lab import open_rig
    from insitu.trainers.insitu import default_phases

    lab, rig = open_rig(net, profile=profile, seed=seed)
    ph = default_phases(net, profile)
    if profile != "ideal":
        calibrate_emulated(lab, rig, settle_ms=ph.settle_ms)
    rig.tare(settle_ms=ph.settle_ms, n=ph.n)
    rig.reset(opt=True)
    return lab, rig, ph


def one_gradient(net: Any, profile: str, batch: int, options: dict | None, seed: int) -> dict:
    from insitu.rig.lab import truth_gradient
    from insitu.tasks import make_task
    from insitu.trainers import superposed
    from insitu.trainers.common import TrainConfig
    from insitu.trainers.insitu import accumulate_batch

    task = make_task("iris", net, seed)
    lab, rig, ph = _boards(net, profile, seed)
    idx = task.train[:batch]
    before = rig.counters.loadings
    if options is None:
        io = net.io_set(task.io)
        accumulate_batch(rig, io.inputs, io.outputs, task.inputs[idx], task.targets[idx],
                         task.loss_grad, ph)  # fmt: skip
        g, count = rig.accumulated()
    else:
        plan = superposed.Superposed(net, task, TrainConfig(epochs=1, batch=batch),
                                     superposed.Options(linearity_tol=1.0, **options))  # fmt: skip
        plan.start(rig, ph)
        caught: dict[str, Any] = {}

        class Report:
            max_dk, frozen = 0.0, 0

        def update(**kw: Any) -> Report:  # the accumulators, not a step
            caught["acc"] = rig.accumulated()
            return Report()

        rig.update = update
        plan.step(idx, 1)
        g, count = caught["acc"]
    spent = rig.counters.loadings - before
    exact = truth_gradient(lab)(task.io, task.inputs[idx], task.targets[idx], task.loss_grad)
    g = g / max(1, count)
    cos = float(g @ exact / (np.linalg.norm(g) * np.linalg.norm(exact)))
    return {"loadings": int(spent), "cosine": cos,
            "rel_err": float(np.linalg.norm(g - exact) / np.linalg.norm(exact))}  # fmt: skip


def one_training(net: Any, method_name: str, seed: int, epochs: int) -> dict[str, Any]:
    from insitu.tasks import make_task
    from insitu.trainers import method
    from insitu.trainers.common import TrainConfig

    task = make_task("iris", net, seed)
    cfg = TrainConfig(epochs=epochs, seed=seed, lr=float(task.defaults.get("lr", 1.0)),
                      batch=int(task.defaults.get("batch", 16)))  # fmt: skip
    _, rig, ph = _boards(net, "realistic", seed)
    r = method(method_name).train(net, task, cfg, rig=rig, phases=ph, eval_every=epochs)
    s = r.summary()
    return {"test_accuracy": s["test_accuracy"], "test_loss": s["test_loss"],
            "loadings": s["loadings"], "train_loadings": s["train_loadings"],
            "rig_seconds": s["rig_seconds"]}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    from insitu.bench import machine_info
    from insitu.bench.paper import network_path
    from insitu.cli.main import UserError
    from insitu.network.schema import load_network

    seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    epochs = args.epochs if args.epochs is not None else (3 if args.quick else 100)
    if seeds < 1 or epochs < 1:
        raise UserError("--seeds and --epochs must be >= 1")
    net = load_network(network_path())
    rows = []
    for profile in PROFILES:
        for batch in BATCHES:
            for label, options in MODES:
                if profile == "ideal" and options and options.get("repeats"):
                    continue  # repeats average noise, which ideal boards have none of
                runs = [one_gradient(net, profile, batch, options, s) for s in range(seeds)]
                rows.append({
                    "profile": profile, "batch": batch, "mode": label,
                    "options": options, "loadings": runs[0]["loadings"],
                    "cosine": float(np.mean([r["cosine"] for r in runs])),
                    "cosine_min": float(min(r["cosine"] for r in runs)),
                    "rel_err": float(np.mean([r["rel_err"] for r in runs])),
                })  # fmt: skip
    training = []
    for name in ("insitu", "superposed"):
        runs = [one_training(net, name, s, epochs) for s in range(seeds)]
        training.append({
            "method": name, "epochs": epochs, "seeds": seeds,
            "test_accuracy": float(np.mean([r["test_accuracy"] for r in runs])),
            "test_accuracy_std": float(np.std([r["test_accuracy"] for r in runs])),
            "loadings": float(np.mean([r["loadings"] for r in runs])),
            "train_loadings": float(np.mean([r["train_loadings"] for r in runs])),
            "rig_hours": float(np.mean([r["rig_seconds"] for r in runs])) / 3600.0,
        })  # fmt: skip
    return {"benchmark": "superposed", "quick": bool(args.quick), "network": NETWORK,
            "seeds": seeds, "rows": rows, "training": training,
            "machine": machine_info()}  # fmt: skip


GRADIENT_HEADER = ["profile", "batch", "mode", "loadings", "cosine (mean)", "cosine (min)",
                   "rel. error"]  # fmt: skip
TRAINING_HEADER = ["method (batch 16)", "epochs", "test accuracy", "loadings", "rig hours"]


def _tables(result: dict[str, Any], markdown: bool) -> tuple[str, str]:
    from insitu.bench import table

    rows = [[r["profile"], str(r["batch"]), r["mode"], str(r["loadings"]), f"{r['cosine']:.6f}",
             f"{r['cosine_min']:.6f}", f"{r['rel_err']:.4f}"] for r in result["rows"]]  # fmt: skip
    train = [[t["method"], str(t["epochs"]),
              f"{t['test_accuracy']:.2%} ± {t['test_accuracy_std']:.2%}",
              f"{t['loadings']:.0f}", f"{t['rig_hours']:.2f}"]
             for t in result["training"]]  # fmt: skip
    right = () if markdown else (1, 3, 4, 5, 6)
    return (table(GRADIENT_HEADER, rows, markdown, right),
            table(TRAINING_HEADER, train, markdown, () if markdown else (1, 3, 4)))  # fmt: skip


def summary(result: dict[str, Any]) -> str:
    grad, train = _tables(result, False)
    return (f"superposed in-situ backprop, {result['network']}, Iris, {result['seeds']} seed(s) "
            f"per row (realistic boards calibrated)\n{grad}\ntraining (realistic, calibrated, "
            f"batch 16):\n{train}")  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    grad, train = _tables(result, True)
    return (f"Superposed in-situ backprop on {result['network']}, Iris; {result['seeds']} "
            "seed(s) per row; realistic boards calibrated (`insitu calibrate`).\n\n"
            f"{grad}\n\n{train}\n")  # fmt: skip


def plot(result: dict[str, Any], path: Path) -> Path:
    from insitu.bench import figure

    with figure(path) as ax:
        for i, (profile, batch) in enumerate((p, b) for p in PROFILES for b in BATCHES):
            rows = [r for r in result["rows"] if r["profile"] == profile and r["batch"] == batch]
            ax.plot([r["loadings"] for r in rows], [1 - r["cosine"] for r in rows], marker="o",
                    color=f"C{i}", label=f"{profile}, batch {batch}")  # fmt: skip
        ax.axhline(1e-3, color="gray", ls=":", label="cosine 0.999")
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1e-9)
        ax.set_xlabel("loadings per gradient")
        ax.set_ylabel("1 - cosine to the exact gradient")
        ax.set_title("superposed vs per-sample (first point of each line)")
        ax.legend(fontsize=8)
    return path
