"""Settle until still: rig seconds per loading and the gradient it leaves, against a fixed 10 τ.

Each case is one Iris training sample's in-situ gradient at k_init (the gradient benchmark's
``iris_case``): a forward and an adjoint loading on in-process li-mao-2024 boards running the
real firmware, each loading measured with ``n`` conversions. Modes:

- ``fixed``: every phase waits 10 τ (``trainers.insitu.settle_ms_for``), then samples;
- ``calm C``: every node starts sampling as soon as each of its gauges' 200 ms window means
  moves by at most C counts (``Node._still``, insitu_node/node.py), 10 τ being the cap; the
  host's phase ends when every board has replied.

Per mode and profile: rig seconds per loading (the boards' clock, ``Rig.mark_time``, around the
two loadings; the tare before them is not counted) and the cosine / relative error of the
gradient against the exact one at the world's true stiffness. The same seeds build the same
worlds for every mode, so the rows differ by the settle rule and the sensor noise drawn.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

HELP = "settle until still vs a fixed 10 tau: rig seconds per loading and gradient cosine"

PROFILES = ("realistic", "harsh")
CALM_FULL = [1000, 3000, 10000, 30000, 100000]
CALM_QUICK = [10000]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, help="cases per point (default 10; 2 with --quick)")
    p.add_argument("--samples", type=int, default=4, help="conversions averaged per phase (4)")
    p.add_argument("--calm", help=argparse.SUPPRESS)  # tests: comma-separated counts


def one_case(net: Any, profile: str, seed: int, calm: int, n: int) -> tuple[float, float, float]:
    """(rig seconds per loading, cosine, relative error) of one case."""
    from insitu.bench.gradient import iris_case
    from insitu.emulator.gradcheck import exact_gradient
    from insitu.gradcheck import ADJOINT_PEAK_N, compare, ports_forces
    from insitu.rig.lab import close_rig, emulated_rig
    from insitu.trainers.insitu import settle_ms_for

    settle = settle_ms_for(net, profile)
    load, fa = iris_case(net, seed)
    lab, rig = emulated_rig(net, profile, seed)
    sigma = ADJOINT_PEAK_N / float(np.max(np.abs(fa)))
    rig.tare(settle_ms=settle, n=n)
    rig.reset()
    t0 = rig.mark_time()
    rig.apply_forces(ports_forces(net, load))
    rig.measure("forward", tag=1, settle_ms=settle, n=n, calm=calm)
    rig.apply_forces(ports_forces(net, sigma * fa))
    rig.measure("adjoint", tag=1, settle_ms=settle, n=n, calm=calm, scale=1.0 / sigma)
    seconds = (rig.mark_time() - t0) / 2
    rig.forces_off()
    g, count = rig.accumulated()
    if count != 1:
        raise RuntimeError(f"boards accumulated {count} samples, expected 1")
    c = compare(net, g, exact_gradient(lab.world, load, fa), 0, 0)
    close_rig(lab, rig)
    return seconds, c.cosine, c.rel_err


def _stats(v: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from insitu.bench import machine_info
    from insitu.network.schema import load_network
    from insitu.trainers.insitu import settle_ms_for

    net = load_network("li-mao-2024")
    quick = bool(getattr(args, "quick", False))
    seeds = args.seeds or (2 if quick else 10)
    calms = [int(c) for c in args.calm.split(",")] if args.calm else (
        CALM_QUICK if quick else CALM_FULL)  # fmt: skip
    rows = []
    for profile in PROFILES:
        for calm in [0, *calms]:
            sec, cos, rel = zip(*(one_case(net, profile, s, calm, args.samples)
                                  for s in range(seeds)), strict=True)  # fmt: skip
            rows.append({"profile": profile, "mode": f"calm {calm}" if calm else "fixed 10 tau",
                         "calm": calm, "settle_cap_ms": settle_ms_for(net, profile),
                         "rig_s_per_loading": _stats(list(sec)), "cosine": _stats(list(cos)),
                         "rel_err": _stats(list(rel))})  # fmt: skip
    return {"network": "li-mao-2024", "seeds": seeds, "samples": args.samples,
            "case": "one Iris training sample at k_init: forward + adjoint loading",
            "rows": rows, "machine": machine_info()}  # fmt: skip


HEADER = ["profile", "settle rule", "rig s per loading", "gradient cosine (mean / min)",
          "rel. error"]  # fmt: skip


def _table(result: dict[str, Any], markdown: bool) -> str:
    from insitu.bench import table

    rows = [[r["profile"], r["mode"], f"{r['rig_s_per_loading']['mean']:.3f}",
             f"{r['cosine']['mean']:.6f} / {r['cosine']['min']:.6f}",
             f"{r['rel_err']['mean']:.4f}"] for r in result["rows"]]  # fmt: skip
    return table(HEADER, rows, markdown, right=(2, 3, 4))


def summary(result: dict[str, Any]) -> str:
    return (f"settle rule, {result['seeds']} cases per row, n = {result['samples']} "
            f"conversions per phase\n" + _table(result, False))  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    return (f"{result['seeds']} cases per row, {result['samples']} conversions per phase.\n\n"
            + _table(result, True) + "\n")  # fmt: skip


def plot(result: dict[str, Any], path: Path) -> Path:
    from insitu.bench import figure

    with figure(path) as ax:
        for profile, marker in zip(PROFILES, "os", strict=True):
            rows = [r for r in result["rows"] if r["profile"] == profile]
            x = [r["rig_s_per_loading"]["mean"] for r in rows]
            y = [1 - r["cosine"]["mean"] for r in rows]
            ax.plot(x, y, marker=marker, label=profile)
            for r, xi, yi in zip(rows, x, y, strict=True):
                if r["calm"] and abs(xi - x[0]) < 0.01:
                    continue  # never still before the cap: the fixed point's label says it
                ax.annotate(r["mode"].replace(" tau", " τ"), (xi, yi), fontsize=7,
                            textcoords="offset points", xytext=(3, 3))  # fmt: skip
        ax.set_xlabel("rig seconds per loading")
        ax.set_ylabel("1 − gradient cosine")
        ax.set_yscale("log")
        ax.set_title("Settle until still vs a fixed 10 τ (li-mao-2024, Iris case)")
        ax.legend()
    return path
