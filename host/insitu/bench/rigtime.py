"""Rig time: Iris accuracy against the hours a real rig would spend, for every rig method.

Each run trains Iris on in-process li-mao-2024 boards of the ``realistic`` profile (10 τ per
phase, HX711 at 80 SPS; uncalibrated, as `insitu train --profile realistic` runs) and, after
every epoch, reads two things that cost the rig nothing: the boards' clock (``Rig.mark_time``,
one ping) and the test accuracy of the stiffness the world really has
(``World.stiffness()``, scored by the digital twin: an observer, not a loading). Rows: per
method, the rig time at which the mean test accuracy over the seeds first reaches 95 % (or
its best, and when), loadings, and the final physical score the method itself measured.

``--quick``: one seed, 2 epochs per method (FD: 1): a smoke run, not a measurement.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

HELP = "Iris accuracy vs rig time (the boards' clock) for every rig method, realistic boards"

TARGET = 0.95
# (label, method, options, batch or None for the task's, epochs, lr or None for the task's)
RUNS: tuple[tuple[str, str, dict[str, Any], int | None, int, float | None], ...] = (
    ("superposed, full batch", "superposed", {}, 105, 40, None),
    ("superposed, batch 16", "superposed", {}, None, 100, None),
    ("insitu", "insitu", {}, None, 100, None),
    ("coupled", "coupled", {}, None, 100, None),
    ("spsa", "spsa", {}, None, 100, None),
    ("fd", "fd", {}, None, 10, None),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, help="seeds per method (default 3; 1 with --quick)")


def one_run(label: str, name: str, options: dict, batch: int | None, epochs: int,
            lr: float | None, seed: int) -> dict[str, Any]:  # fmt: skip
    from insitu.network.schema import load_network
    from insitu.rig.lab import open_rig
    from insitu.tasks import make_task
    from insitu.trainers import method
    from insitu.trainers.common import Callback, TrainConfig
    from insitu.trainers.insilico import Model

    net = load_network("li-mao-2024")
    task = make_task("iris", net, seed)
    d = task.defaults
    cfg = TrainConfig(epochs=epochs, seed=seed, lr=float(lr or d.get("lr", 1.0)),
                      batch=int(batch or d.get("batch", 16)))  # fmt: skip
    lab, rig = open_rig(net, profile="realistic", seed=seed)
    twin = Model(net, task)
    spe = -(-task.train.size // cfg.batch)

    def observe() -> tuple[float, float, int]:
        eq = twin.equilibrium(lab.world.stiffness())
        _, acc = twin.evaluate(eq, task.test)
        return rig.mark_time(), float(acc or 0.0), int(rig.counters.loadings)

    curve: list[tuple[float, float, int]] = []

    class Observer(Callback):
        def on_start(self, *args: Any) -> None:
            curve.append(observe())

        def on_step(self, info: Any) -> None:
            if info.step % spe == 0:
                curve.append(observe())

    r = method(name).train(net, task, cfg, [Observer()], rig=rig, profile="realistic",
                           eval_every=epochs, options=method(name).options(**options))  # fmt: skip
    rig_s, acc, loadings = (list(v) for v in zip(*curve, strict=True))
    return {"rig_s": rig_s, "accuracy": acc, "loadings": loadings,
            "final_test_accuracy": r.final.test_accuracy, "rig_seconds": r.rig_seconds,
            "total_loadings": r.measurements}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    from insitu.bench import machine_info
    from insitu.cli.main import UserError

    seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    if seeds < 1:
        raise UserError("--seeds must be >= 1")
    rows = []
    for label, name, options, batch, epochs, lr in RUNS:
        if args.quick:
            epochs = 1 if name == "fd" else 2
        runs = [one_run(label, name, options, batch, epochs, lr, s) for s in range(seeds)]
        acc = np.mean([r["accuracy"] for r in runs], axis=0)
        rig_h = np.mean([r["rig_s"] for r in runs], axis=0) / 3600.0
        loads = np.mean([r["loadings"] for r in runs], axis=0)
        hit = next((i for i, a in enumerate(acc) if a >= TARGET), None)
        best = int(np.argmax(acc))
        at = best if hit is None else hit
        rows.append({
            "method": label, "trainer": name, "epochs": epochs, "seeds": seeds,
            "reached_target": hit is not None, "at_epoch": at,
            "accuracy": float(acc[at]), "rig_hours": float(rig_h[at]),
            "loadings": float(loads[at]),
            "final_accuracy": float(acc[-1]), "final_rig_hours": float(rig_h[-1]),
            "final_test_accuracy_measured": float(np.mean(
                [r["final_test_accuracy"] for r in runs])),
            "curve": {"rig_hours": rig_h.tolist(), "accuracy": acc.tolist(),
                      "loadings": loads.tolist()},
        })  # fmt: skip
    return {"benchmark": "rigtime", "quick": bool(args.quick), "network": "li-mao-2024",
            "profile": "realistic", "target": TARGET, "seeds": seeds, "rows": rows,
            "machine": machine_info()}  # fmt: skip


HEADER = ["method", "reaches 95 %", "epoch", "accuracy", "rig hours", "loadings",
          "final accuracy", "rig hours (end)"]  # fmt: skip


def _table(result: dict[str, Any], markdown: bool) -> str:
    from insitu.bench import table

    rows = [[r["method"], "yes" if r["reached_target"] else "no", str(r["at_epoch"]),
             f"{r['accuracy']:.2%}", f"{r['rig_hours']:.2f}", f"{r['loadings']:.0f}",
             f"{r['final_accuracy']:.2%}", f"{r['final_rig_hours']:.2f}"]
            for r in result["rows"]]  # fmt: skip
    return table(HEADER, rows, markdown, right=() if markdown else (2, 3, 4, 5, 6, 7))


def summary(result: dict[str, Any]) -> str:
    return (f"Iris on li-mao-2024, realistic boards, {result['seeds']} seed(s): test accuracy "
            f"(the world's stiffness, scored by the twin) vs rig time\n"
            + _table(result, False))  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    return (f"Iris on li-mao-2024, realistic boards, {result['seeds']} seed(s); accuracy = "
            "test accuracy of the world's stiffness scored by the twin (an observer); rig time "
            "= the boards' clock. At the first epoch whose mean reaches 95 %, else at the best "
            "one.\n\n" + _table(result, True) + "\n")  # fmt: skip


def plot(result: dict[str, Any], path: Path) -> Path:
    from insitu.bench import figure

    with figure(path) as ax:
        for r in result["rows"]:
            c = r["curve"]
            ax.plot([max(h, 1e-3) for h in c["rig_hours"]], c["accuracy"], label=r["method"])
        ax.axhline(result["target"], color="gray", ls=":", label="95 %")
        ax.set_xscale("log")
        ax.set_xlabel("rig hours (boards' clock)")
        ax.set_ylabel("Iris test accuracy")
        ax.set_title("accuracy vs rig time, li-mao-2024, realistic boards")
        ax.legend(fontsize=7)
    return path
