"""Friction benchmark: Iris in situ on li-mao-2024 as the nodes' support friction grows.

Each row trains Iris in situ (trainers/insitu.py; 100 epochs, batch 16, Adam lr 3: the task's
tuned defaults) on in-process emulated boards of the ``realistic`` profile with
``friction_n`` = F, the stick-slip threshold of every free node's supports
(insitu.emulator.friction: a node moves only when the out-of-balance force on it exceeds F,
and stops F/k short of the frictionless equilibrium). F = 0 is the realistic bench as it is.
Per row: test accuracy (mean over seeds), the cosine of one in-situ gradient to the exact one
(the issue's 5 g gradcheck, seed 0), the loadings, the emulated rig time, and the servo
supply current after the updates (insitu.emulator.supply: the surge of the first PWM frame
and the current while the servos move; the largest over the run).

What it answers: the friction the in-situ rule tolerates, to compare with what the kit's
supports give (hardware/docs/assembly.md, "Friction"). ``--quick``: F in {0, 1, 10} mN, one
seed, 3 epochs on 32 training samples: a smoke run, not a measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

HELP = "Iris in situ (realistic boards) as the nodes' stick-slip friction grows"

NETWORK = "li-mao-2024"
LEVELS_N = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)  # 0.1 mN .. 30 mN (slides: 10-50 mN)
QUICK_LEVELS_N = (0.0, 1e-3, 1e-2)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, help="seeds 0..N-1 per level (default 3; 1 quick)")
    p.add_argument("--epochs", type=int, help="epochs per run (default 100; 3 with --quick)")
    p.add_argument("--levels", help="friction thresholds in N, comma-separated (e.g. 0,1e-3)")


def _levels(args: argparse.Namespace) -> tuple[float, ...]:
    from insitu.cli.main import UserError

    if not args.levels:
        return QUICK_LEVELS_N if args.quick else LEVELS_N
    try:
        out = tuple(float(x) for x in args.levels.split(",") if x.strip())
    except ValueError:
        raise UserError(f"--levels {args.levels!r}: expected numbers like 0,1e-3") from None
    if not out or any(not (v >= 0 and np.isfinite(v)) for v in out):
        raise UserError(f"--levels {args.levels!r}: friction thresholds must be >= 0 N")
    return out


def one_run(friction_n: float, seed: int, epochs: int, quick: bool) -> dict[str, Any]:
    from insitu.bench.paper import network_path
    from insitu.emulator.hardware import REALISTIC
    from insitu.emulator.supply import peak_after_update
    from insitu.network.schema import load_network
    from insitu.rig.lab import emulated_rig
    from insitu.tasks import make_task
    from insitu.trainers import insitu
    from insitu.trainers.common import Callback, TrainConfig

    net = load_network(network_path())
    task = make_task("iris", net, seed)
    if quick:
        task = dataclasses.replace(task, train=task.train[:32], test=task.test[:16])
    profile = REALISTIC.with_(friction_n=float(friction_n))
    lab, rig = emulated_rig(net, profile, seed=seed)

    class Supply(Callback):
        surge, moving = 0.0, 0.0

        def on_step(self, info: Any) -> None:  # after the boards applied the update
            p = peak_after_update(lab.world)
            self.surge, self.moving = max(self.surge, p.surge_a), max(self.moving, p.moving_a)

    d = task.defaults
    cfg = TrainConfig(epochs=epochs, batch=int(d.get("batch", 16)), lr=float(d.get("lr", 3.0)),
                      seed=seed)  # fmt: skip
    sup = Supply()
    t0, w0 = time.perf_counter(), lab.world.now()
    r = insitu.train(net, task, cfg, callbacks=[sup], rig=rig, profile="realistic",
                     eval_every=max(1, epochs))  # fmt: skip
    last, first = r.history[-1], r.history[0]
    out = {
        "friction_n": float(friction_n),
        "seed": seed,
        "test_accuracy": last.test_accuracy,
        "train_accuracy": last.train_accuracy,
        "initial_test_accuracy": first.test_accuracy,
        "loadings": int(r.measurements),
        "rig_s": float(lab.world.now() - w0),
        "wall_s": time.perf_counter() - t0,
        "supply_surge_a": sup.surge,
        "supply_moving_a": sup.moving,
        "faults": list(r.faults),
    }
    rig.close()
    return out


def gradient_cosine(friction_n: float, seed: int) -> float:
    """Cosine of the boards' in-situ gradient to the exact one under Iris-sized loads (5 g at
    nodes 10, 12, 13, 14; adjoint at nodes 8 and 2: the issue's gradcheck)."""
    from insitu.bench.paper import network_path
    from insitu.emulator.gradcheck import _check
    from insitu.emulator.hardware import REALISTIC
    from insitu.network.schema import load_network
    from insitu.rig.lab import emulated_rig

    net = load_network(network_path())
    load, adj = np.zeros(net.n_nodes * net.dim), np.zeros(net.n_nodes * net.dim)
    for n in (10, 12, 13, 14):
        load[net.index(n) * net.dim + 1] = -0.049
    adj[net.index(8) * net.dim], adj[net.index(2) * net.dim] = 0.01, -0.01
    lab, rig = emulated_rig(net, REALISTIC.with_(friction_n=float(friction_n)), seed=seed)
    try:
        return _check(rig, lab.world, net, load, adj, None).cosine
    finally:
        rig.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    from insitu.bench import machine_info
    from insitu.cli.main import UserError

    levels = _levels(args)
    seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    epochs = args.epochs if args.epochs is not None else (3 if args.quick else 100)
    if seeds < 1 or epochs < 1:
        raise UserError("--seeds and --epochs must be >= 1")
    runs = [one_run(f, s, epochs, bool(args.quick)) for f in levels for s in range(seeds)]
    rows = []
    for f in levels:
        rs = [x for x in runs if x["friction_n"] == f]
        acc = [x["test_accuracy"] for x in rs]
        rows.append({
            "friction_n": f,
            "test_accuracy": float(np.mean(acc)),
            "test_accuracy_std": float(np.std(acc)),
            "test_accuracy_min": float(np.min(acc)),
            "initial_test_accuracy": float(np.mean([x["initial_test_accuracy"] for x in rs])),
            "loadings": int(np.mean([x["loadings"] for x in rs])),
            "rig_s": float(np.mean([x["rig_s"] for x in rs])),
            "supply_surge_a": max(x["supply_surge_a"] for x in rs),
            "supply_moving_a": max(x["supply_moving_a"] for x in rs),
            "gradient_cosine": gradient_cosine(f, 0),
            "seeds": len(rs),
        })  # fmt: skip
    return {
        "benchmark": "friction",
        "quick": bool(args.quick),
        "network": NETWORK,
        "profile": "realistic",
        "task": "iris",
        "epochs": epochs,
        "machine": machine_info(),
        "rows": rows,
        "runs": runs,
    }


def summary(result: dict[str, Any]) -> str:
    lines = [
        f"friction benchmark: Iris in situ, {result['network']}, {result['profile']} boards, "
        f"{result['epochs']} epochs",
        "friction (mN)  test acc (mean ± std, min)   before   grad cos   loadings   rig s   "
        "servo supply A (surge / moving)",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['friction_n'] * 1e3:>12.2f}  {r['test_accuracy']:>7.2%} ± "
            f"{r['test_accuracy_std']:.2%}, {r['test_accuracy_min']:.2%}   "
            f"{r['initial_test_accuracy']:>6.2%}  {r['gradient_cosine']:>8.4f}  "
            f"{r['loadings']:>9}  {r['rig_s']:>6.0f}   {r['supply_surge_a']:.2f} / "
            f"{r['supply_moving_a']:.2f}"
        )
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    out = [
        f"Iris in situ on {result['network']}, `{result['profile']}` boards with the nodes' "
        f"support friction F, {result['epochs']} epochs, {result['rows'][0]['seeds']} seed(s).",
        "",
        "| friction F (mN) | test accuracy | min | gradient cosine | loadings | rig s "
        "| servo surge / moving (A) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        out.append(
            f"| {r['friction_n'] * 1e3:g} | {r['test_accuracy']:.2%} ± "
            f"{r['test_accuracy_std']:.2%} | {r['test_accuracy_min']:.2%} | "
            f"{r['gradient_cosine']:.4f} | {r['loadings']} | "
            f"{r['rig_s']:.0f} | {r['supply_surge_a']:.2f} / {r['supply_moving_a']:.2f} |"
        )
    return "\n".join(out) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    x = [max(r["friction_n"] * 1e3, 1e-2) for r in rows]  # F = 0 drawn at 0.01 mN
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.errorbar(x, [r["test_accuracy"] for r in rows],
                yerr=[r["test_accuracy_std"] for r in rows], marker="o", capsize=3,
                label="in situ, test")  # fmt: skip
    ax.plot(x, [r["initial_test_accuracy"] for r in rows], ls=":", color="gray",
            label="before training")  # fmt: skip
    if all("gradient_cosine" in r for r in rows):
        ax.plot(x, [r["gradient_cosine"] for r in rows], marker="s", ls="--", color="C2",
                label="gradient cosine (one check)")  # fmt: skip
    ax.axvspan(10, 50, color="C3", alpha=0.12, label="listed slides (10-50 mN)")
    ax.set_xscale("log")
    ax.set_xlabel("support friction F (mN; F = 0 at the left edge)")
    ax.set_ylabel("Iris test accuracy / cosine")
    ax.set_title(f"friction tolerance, {result['network']}, {result['profile']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
