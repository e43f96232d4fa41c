"""`insitu plot RUN`: PNGs of a recorded run (matplotlib, Agg backend).

- ``<run>-curves.png``: loss and accuracy per epoch, train and test (batch losses faint);
- ``<run>-network.png``: the network before and after training, each bond coloured and sized
  by its stiffness (colour bar in N/m); supports, input and output ports marked;
- ``<run>-gradients.png`` (runs that recorded gradient checks): the gradient the boards
  computed against the exact one, per bond.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "plot a recorded run: loss/accuracy curves, the network's stiffness, gradient checks"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run id (see insitu runs)")
    p.add_argument("-o", "--out", metavar="DIR", help="directory (default <store dir>/<run>/)")
    p.add_argument(
        "--store", metavar="PATH", help="run store (default $INSITU_STORE or runs/insitu.sqlite)"
    )


def run(args: argparse.Namespace) -> int:
    from insitu.cli.runs import _open, _row

    store = _open(args)
    row = _row(store, args.run)
    out = Path(args.out) if args.out else store.run_dir(row["id"])
    for path in plot_run(store, row["id"], out):
        print(path)
    return 0


def plot_run(store: Any, run: int, out: Path) -> list[Path]:
    """Write the run's PNGs into ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    row = store.run(run)
    paths = [_curves(store, row, out / f"run{run}-curves.png")]
    paths.append(_network(store, row, out / f"run{run}-network.png"))
    grads = store.gradients(run)
    if grads:
        paths.append(_gradients(grads, row, out / f"run{run}-gradients.png"))
    return paths


def _title(row: dict[str, Any]) -> str:
    prof = f", {row['profile']} boards" if row.get("profile") else ""
    return f"run {row['id']}: {row['method']} on {row['task']}{prof}, seed {row['seed']}"


def _curves(store: Any, row: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    epochs = store.epochs(row["id"])
    steps = store.steps(row["id"])
    has_acc = any(e["train_accuracy"] is not None for e in epochs)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 4))
    axes = np.atleast_1d(axes)
    ax = axes[0]
    if steps:
        spe = max(1, max(s["step"] for s in steps if s["epoch"] == 1) if steps else 1)
        x = [(s["step"] - 1) / spe for s in steps]  # a batch loss is from before its step
        ax.plot(x, [s["loss"] for s in steps], color="0.75", lw=0.7, label="batch (train)")
    ep = [e["epoch"] for e in epochs]
    ax.plot(ep, [e["train_loss"] for e in epochs], "o-", ms=3, label="train")
    ax.plot(ep, [e["test_loss"] for e in epochs], "s-", ms=3, label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    losses = [v for e in epochs for v in (e["train_loss"], e["test_loss"]) if v is not None]
    if losses and min(losses) > 0 and max(losses) / min(losses) > 20:
        ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    if has_acc:
        ax = axes[1]
        ax.plot(ep, [100 * (e["train_accuracy"] or 0) for e in epochs], "o-", ms=3, label="train")
        ax.plot(ep, [100 * (e["test_accuracy"] or 0) for e in epochs], "s-", ms=3, label="test")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
    fig.suptitle(_title(row))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _io_ports(row: dict[str, Any], net: Any) -> tuple[list, list]:
    """(inputs, outputs) of the run's task, or ([], []) if the task cannot be rebuilt."""
    spec = row["config"].get("task") or {}
    try:
        from insitu.cli.train import _task

        task = _task(argparse.Namespace(**spec), net, int(row["seed"]))
        io = net.io_set(task.io)
        return list(io.inputs), list(io.outputs)
    except Exception:
        return [], []


def _network(store: Any, row: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib import cm, colors
    from matplotlib.collections import LineCollection

    from insitu.network.schema import parse_network

    net = parse_network(row["network_text"], row["network_source"] or "<run>")
    snaps = store.snapshots(row["id"])
    states = [("initial", np.asarray(net.k_init, dtype=float))]
    if snaps:
        states = [
            (f"step {snaps[0]['step']}", np.asarray(snaps[0]["k"], dtype=float)),
            (f"step {snaps[-1]['step']} (epoch {snaps[-1]['epoch']})", np.asarray(snaps[-1]["k"])),
        ]
    lo, hi = float(np.min(net.k_min)), float(np.max(net.k_max))
    norm = colors.Normalize(vmin=lo, vmax=hi)
    cmap = plt.get_cmap("viridis")
    pos = net.positions[:, :2] * 1000.0  # mm
    ins, outs = _io_ports(row, net)
    fig, axes = plt.subplots(1, len(states), figsize=(5.2 * len(states) + 1.2, 4.6))
    axes = np.atleast_1d(axes)
    for ax, (label, k) in zip(axes, states, strict=True):
        segs = [pos[list(b)] for b in net.bonds]
        width = 1.0 + 5.0 * (np.clip(k, lo, hi) - lo) / max(hi - lo, 1e-12)
        ax.add_collection(LineCollection(segs, colors=cmap(norm(k)), linewidths=width, zorder=1))
        ax.scatter(pos[:, 0], pos[:, 1], s=22, c="white", edgecolors="k", zorder=2)
        fixed = [net.index(n) for n in net.fixed]
        ax.scatter(
            pos[fixed, 0], pos[fixed, 1] + 2.5, marker="v", s=90, c="k", zorder=3,
            label="support (fixed)",
        )  # fmt: skip
        for ports, mark, colour, name in ((ins, "o", "tab:red", "input"),
                                          (outs, "s", "tab:blue", "output")):  # fmt: skip
            nodes = sorted({net.index(p.node) for p in ports})
            if nodes:
                ax.scatter(
                    pos[nodes, 0], pos[nodes, 1], marker=mark, s=80, facecolors="none",
                    edgecolors=colour, linewidths=2, zorder=3, label=f"{name} node",
                )  # fmt: skip
        for i, nid in enumerate(net.node_ids):
            ax.annotate(
                str(nid), pos[i], xytext=(5, -10), textcoords="offset points", fontsize=7,
                color="0.3",
            )  # fmt: skip
        ax.set_title(f"{label}: {k.min():.1f} … {k.max():.1f} N/m", fontsize=10)
        ax.set_aspect("equal")
        ax.margins(0.08)
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
    axes[0].legend(loc="lower left", fontsize=7, framealpha=0.8)
    sm = cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=list(axes), label="bond stiffness (N/m)", shrink=0.85)
    fig.suptitle(_title(row) + f" — {net.name}")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _gradients(grads: list[dict[str, Any]], row: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    from insitu.cli.runs import gradient_stats

    stats = {(g["epoch"], g["step"]): g for g in gradient_stats(grads)}
    fig, ax = plt.subplots(figsize=(5.5, 5))
    allv = []
    for key, g in stats.items():
        sel = [r for r in grads if (r["epoch"], r["step"]) == key]
        a = np.array([r["insitu"] for r in sel])
        b = np.array([r["exact"] for r in sel])
        allv += [*a, *b]
        ax.scatter(
            b, a, s=18, alpha=0.8,
            label=f"after epoch {key[0]}: cos {g['cosine']:.3f}, rel. err {g['rel_err']:.2g}",
        )  # fmt: skip
    m = float(np.max(np.abs(allv))) * 1.08 if allv else 1.0
    ax.plot([-m, m], [-m, m], "k--", lw=0.8, label="in situ = exact")
    ax.set_xlim(-m, m)
    ax.set_ylim(-m, m)
    ax.set_aspect("equal")
    ax.axhline(0, color="0.85", lw=0.6, zorder=0)
    ax.axvline(0, color="0.85", lw=0.6, zorder=0)
    ax.set_xlabel("exact dL/dk per bond (m/N)")
    ax.set_ylabel("in situ (boards) dL/dk per bond (m/N)")
    ax.ticklabel_format(style="sci", scilimits=(-2, 2))
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(_title(row), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
