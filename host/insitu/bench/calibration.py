"""Calibration benchmark: the real-board path, end to end, through serial ports only.

For each hardware profile (``realistic``, ``harsh`` and ``miscalibrated``: parts far off their
nominal calibration, emulator/hardware.py) the boards of li-mao-2024 run as MicroPython
processes on ptys (``emulator.mplab.MicroPythonLab``, as ``insitu emulate --micropython``), and
the host reaches them only through their ports (``rig.lab.port_rig``):

1. gradient check before calibration: one forward and one adjoint phase (``calibrate
   .check_gradient``); ``cosine_before`` is its cosine with the emulator's *truth* (the physics
   core at the world's true stiffness and geometry), ``twin_before`` with the twin's gradient at
   the k the nodes report;
2. ``calibrate.calibrate`` (the emulator hangs the known weights, as a person would), loaded on
   the nodes and saved;
3. the same check again: ``cosine_after`` (truth) and ``twin_after`` (the twin at the nodes'
   reported realised k: what ``insitu gradcheck --port`` shows a lab).

The worlds of MicroPython processes relax in real time (the interpreters run on a wall clock),
so every phase waits 10 τ: ``--quick`` uses τ/4 (a faster-settling bench; calibration and the
gradient do not depend on τ), 3 sweep levels and 8 samples per phase; the full run uses the
file's τ, 5 levels and 16 samples.

Then Iris in situ on ``--iris-profile`` boards (miscalibrated), calibrated by the same
``calibrate`` through their ports, against in silico on the same seeds. An Iris run is ~10⁴
loadings: at 10 τ each in real time, 100 epochs × 5 seeds would take ≈45 h of MicroPython
processes. So these boards are the same firmware as in-process nodes (``InProcessLab``) served
on ptys in virtual time (``emulator.ptyserve``: time passes only while a board measures, as
fast as the nodes can be ticked): the host's path is unchanged — pyserial on ports, the codec,
the session's deadlines, the nodes' calibration — and the file's τ costs no wall time.
``rig_s`` per seed is the virtual time the boards spent, what a rig would.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

HELP = "calibration through serial ports: gradient cosine before/after per profile, Iris after"

NETWORK = "li-mao-2024"
PROFILES = ("realistic", "harsh", "miscalibrated")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profiles", default=",".join(PROFILES), help="comma-separated profiles")
    p.add_argument("--seed", type=int, default=1, help="the boards' part draws (1)")
    p.add_argument("--iris-epochs", type=int, help="Iris epochs (100; 1 with --quick; 0: none)")
    p.add_argument("--iris-seeds", type=int, help="Iris training seeds 0.. (5; 1 with --quick)")
    p.add_argument("--tau-scale", type=float, help="relaxation time x this (1; 0.25 --quick)")
    p.add_argument("--iris-profile", default="miscalibrated",
                   help="the profile of the Iris boards (miscalibrated)")  # fmt: skip


def _case(net: Any) -> tuple[np.ndarray, np.ndarray]:
    """A load and adjoint forces every board feels (5 g at the behaviour input, as the tests)."""
    from insitu.network.schema import Port

    nd = net.n_nodes * net.dim
    load, f_adj = np.zeros(nd), np.zeros(nd)
    load[net.dof(Port(11, 1))] = -0.049
    load[net.dof(Port(14, 0))] = 0.02
    f_adj[net.dof(Port(8, 0))] = 0.01
    f_adj[net.dof(Port(2, 0))] = -0.006
    f_adj[net.dof(Port(3, 1))] = 0.004
    return load, f_adj


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _check(rig: Any, world: Any, load: Any, f_adj: Any, settle_ms: int, n: int) -> dict:
    from insitu.calibrate import check_gradient

    r = check_gradient(rig, load, f_adj, settle_ms=settle_ms, n=n)
    truth = world.exact_gradient(-f_adj, f=load)
    return {"truth": _cos(r.insitu, truth), "twin": r.cosine}


def _iris(
    net: Any, profile: str, board_seed: int, epochs: int, seeds: int, levels: int, n: int
) -> dict[str, Any]:
    """Calibrate ``profile`` boards through their ports (in-process nodes on ptys, virtual
    time), then Iris in situ on them vs in silico, same seeds."""
    from insitu.calibrate import calibrate
    from insitu.emulator.inprocess import InProcessLab
    from insitu.emulator.ptyserve import PtyServer
    from insitu.emulator.weights import EmulatedWeights
    from insitu.rig.lab import port_rig
    from insitu.tasks import make_task
    from insitu.trainers import insilico, insitu
    from insitu.trainers.common import TrainConfig

    settle_ms = int(round(10 * net.relaxation_time * 1000))
    lab = InProcessLab(net, profile, seed=board_seed)
    rows = []
    with PtyServer(lab) as server:
        rig = port_rig(net, [server.ports[b] for b in sorted(server.ports)], "emu",
                       profile=profile, timeout=5.0)  # fmt: skip
        try:
            t0, v0 = time.perf_counter(), lab.clock.now()
            cal = calibrate(rig, EmulatedWeights(lab.world), settle_ms=settle_ms, n=n,
                            levels=levels)  # fmt: skip
            cal_wall, cal_rig = time.perf_counter() - t0, lab.clock.now() - v0
            for seed in range(seeds):
                task = make_task("iris", net, seed)
                d = task.defaults
                cfg = TrainConfig(epochs=epochs, batch=int(d["batch"]), lr=float(d["lr"]),
                                  seed=seed)  # fmt: skip
                c = rig.counters
                t0, v0, m0, l0 = time.perf_counter(), lab.clock.now(), c.sent, c.loadings
                r = insitu.train(net, task, cfg, rig=rig, profile=profile,
                                 eval_every=max(1, epochs))  # fmt: skip
                wall, rig_s = time.perf_counter() - t0, lab.clock.now() - v0
                s = insilico.train(net, task, cfg)
                rows.append({
                    "seed": seed,
                    "insitu_test_accuracy": r.final.test_accuracy,
                    "insilico_test_accuracy": s.final.test_accuracy,
                    "insitu_train_accuracy": r.final.train_accuracy,
                    "insilico_train_accuracy": s.final.train_accuracy,
                    "insitu_test_loss": r.final.test_loss,
                    "insilico_test_loss": s.final.test_loss,
                    "rig_s": rig_s,
                    "loadings": int(c.loadings - l0),
                    "messages": int(c.sent - m0),
                    "wall_s": wall,
                })  # fmt: skip
                print(f"  iris seed {seed}: in situ {100 * r.final.test_accuracy:.1f} %, in "
                      f"silico {100 * s.final.test_accuracy:.1f} % test; {rig_s / 60:.0f} rig "
                      f"min, {wall:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
        finally:
            rig.close()
    a = [r["insitu_test_accuracy"] for r in rows]
    b = [r["insilico_test_accuracy"] for r in rows]
    return {
        "profile": profile,
        "boards": "in-process nodes on ptys, virtual time (emulator/ptyserve.py)",
        "board_seed": board_seed,
        "tau_s": net.relaxation_time,
        "calibration_id": cal.id,
        "calibrate_rig_s": cal_rig,
        "calibrate_wall_s": cal_wall,
        "epochs": epochs,
        "seeds": seeds,
        "rows": rows,
        "insitu_mean": float(np.mean(a)),
        "insilico_mean": float(np.mean(b)),
        "gap_points": 100.0 * float(np.mean(a) - np.mean(b)),
        "rig_s_mean": float(np.mean([r["rig_s"] for r in rows])),
        "wall_s_mean": float(np.mean([r["wall_s"] for r in rows])),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from insitu.bench import machine_info
    from insitu.bench.gradient import network_path  # the one place it is found (li-mao-2024)
    from insitu.calibrate import CalibrationError, calibrate
    from insitu.emulator.mplab import MicroPythonLab
    from insitu.emulator.weights import EmulatedWeights
    from insitu.network.schema import load_network
    from insitu.rig.lab import port_rig

    quick = bool(args.quick)
    profiles = [p for p in args.profiles.split(",") if p]
    tau_scale = args.tau_scale or (0.25 if quick else 1.0)
    epochs = args.iris_epochs if args.iris_epochs is not None else (1 if quick else 100)
    seeds = args.iris_seeds or (1 if quick else 5)
    levels, n = (3, 8) if quick else (5, 16)
    base = load_network(network_path())
    net = replace(base, relaxation_time=base.relaxation_time * tau_scale)
    settle_ms = int(round(10 * net.relaxation_time * 1000))
    load, f_adj = _case(net)
    rows: list[dict[str, Any]] = []
    iris = None
    for profile in profiles:
        with MicroPythonLab(net, profile, seed=args.seed) as lab:
            # realistic boards are the kit's boards of the file's family, as flashed
            rig = port_rig(net, list(lab.ports().values()), lab.family, profile=profile,
                           timeout=5.0)  # fmt: skip
            try:
                before = _check(rig, lab.world, load, f_adj, settle_ms, n)
                faults_before = rig.fault_report()  # latched by the uncalibrated check
                t0 = time.perf_counter()
                try:
                    cal = calibrate(
                        rig, EmulatedWeights(lab.world), settle_ms=settle_ms, n=n, levels=levels
                    )
                except CalibrationError as exc:  # reported as a row, the other profiles go on
                    rows.append({"profile": profile, "cosine_before": before["truth"],
                                 "twin_before": before["twin"], "error": str(exc),
                                 "faults_before": faults_before,
                                 "faults_after": rig.fault_report()})  # fmt: skip
                    continue
                cal_s = time.perf_counter() - t0
                after = _check(rig, lab.world, load, f_adj, settle_ms, n)
                rows.append({
                    "profile": profile,
                    "cosine_before": before["truth"],
                    "cosine_after": after["truth"],
                    "twin_before": before["twin"],
                    "twin_after": after["twin"],
                    "calibration_id": cal.id,
                    "calibrate_s": cal_s,
                    "messages": int(rig.counters.sent),
                    "faults_before": faults_before,
                    "faults_after": rig.fault_report(),
                })  # fmt: skip
            finally:
                rig.close()
    if epochs > 0:  # the file's tau: virtual time makes settling free
        iris = _iris(base, args.iris_profile, args.seed, epochs, seeds, levels, n)
    return {
        "benchmark": "calibration",
        "network": NETWORK,
        "quick": quick,
        "tau_s": net.relaxation_time,
        "settle_ms": settle_ms,
        "levels": levels,
        "samples": n,
        "seed": args.seed,
        "rows": rows,
        "iris": iris,
        "machine": machine_info(),
    }


def summary(result: dict[str, Any]) -> str:
    lines = [
        f"{result['network']} through ports, tau {result['tau_s']:g} s, settle "
        f"{result['settle_ms']} ms, {result['levels']} levels, {result['samples']} samples",
        f"{'profile':<14} {'cos before':>11} {'cos after':>10} {'twin after':>11} {'cal s':>7}",
    ]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"{r['profile']:<14} {r['cosine_before']:11.6f}  FAILED: {r['error']}")
            continue
        lines.append(
            f"{r['profile']:<14} {r['cosine_before']:11.6f} {r['cosine_after']:10.6f} "
            f"{r['twin_after']:11.6f} {r['calibrate_s']:7.0f}"
        )
    it = result.get("iris")
    if it:
        lines.append(
            f"Iris on calibrated {it['profile']} boards, {it['epochs']} epoch(s) x {it['seeds']} "
            f"seed(s): in situ {100 * it['insitu_mean']:.1f} %, in silico "
            f"{100 * it['insilico_mean']:.1f} % ({it['gap_points']:+.1f} points); "
            f"{it['rig_s_mean'] / 3600:.2f} rig h and {it['wall_s_mean']:.0f} wall s per seed"
        )
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    out = ["| profile | cosine before | cosine after | twin after |", "|---|---|---|---|"]
    for r in result["rows"]:
        if "error" in r:
            out.append(f"| {r['profile']} | {r['cosine_before']:.6f} | failed: {r['error']} | |")
            continue
        out.append(
            f"| {r['profile']} | {r['cosine_before']:.6f} | {r['cosine_after']:.6f} | "
            f"{r['twin_after']:.6f} |"
        )
    return "\n".join(out) + "\n\n" + summary(result).splitlines()[-1] + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if "error" not in r]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(x - 0.2, [1 - r["cosine_before"] for r in rows], 0.4, label="before")
    ax.bar(x + 0.2, [max(1 - r["cosine_after"], 1e-9) for r in rows], 0.4, label="after")
    ax.axhline(1e-3, color="k", lw=0.8, ls="--", label="target 1 - 0.999")
    ax.set_yscale("log")
    ax.set_xticks(x, [r["profile"] for r in rows])
    ax.set_ylabel("1 - gradient cosine vs truth")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
