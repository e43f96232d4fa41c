"""Methods benchmark: physical loadings each training method spends, per update and to a target.

Two networks, one behaviour-like task each (one sample, batch 1, MSE on two output
displacements, Adam with lr `--lr` = 1 N/m, the same seeded run for every method):

- ``li-mao-2024`` (28 bonds): the paper's behaviour task (5 g at node 11 → u_y(13), u_y(14) =
  −0.625, −0.480 mm);
- ``triangular-11x11`` (320 bonds, ``insitu network triangular --rows 11``): its ``default`` io
  set (5 g down at the middle-row input, u_y at the two bottom-row outputs). No reference task
  fits that io set, so the targets are a teacher's outputs: the same lattice with the bonds of
  its left half at k_min and of its right half at k_max (−0.139, −0.142 mm against −0.122,
  −0.154 mm at k_init), so loss 0 is reachable and the outputs must move 14 % and 8 %.

Methods (trainers/, in-process emulated boards running the real firmware, ``ideal`` profile by
default): in-situ backprop; coupled learning with the classic nudge (``nudge="target"``) and
with the matched nudge; physics-aware training (PAT, exact digital twin on ideal boards);
SPSA (c = 1 N/m); forward finite differences (h = 1 N/m, rounded to element steps).

What is counted: a *loading* is one ``measure`` broadcast. Only the loadings a method spends on
learning count (``train_loadings``: tare and the scores at the start and end are excluded, the
same for every method). After every update the benchmark reads the emulated world's stiffness
and computes the loss there with the physics core (``insilico.Model``): that observer costs no
loadings and is the same for every method (a method's own estimate — SPSA's mean of L± at
perturbed stiffnesses, FD's base loss — is not used to judge it). Rig time: the emulated
boards' virtual clock across the learning steps (``rig_s_per_update``, ``rig_s_to_target``,
``curve.rig_s``) — the settles, samples and node work a real rig would spend, at the
profile's timing; the ideal profile does not settle, so its rig time is the sampling alone.

Target: ``--target`` × the initial loss (default 0.01: the loss cut 100-fold), the same for
every method on a network. Loadings to target: the learning loadings spent when the loss after
an update first falls to the target. Fixed budget: the loss after ``--steps`` updates, and the
loss at in situ's budget (the loadings in situ spends in ``--steps`` updates). Methods in
``--stop-at-target`` (default: fd on networks above 100 bonds, where an update costs 321
loadings) stop once they reach the target; their "after N updates" figure is then missing.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from insitu.cli.element import add_element

HELP = "loadings per update and to a target loss: in situ vs coupled, PAT, SPSA, FD"

LI_MAO = "li-mao-2024"
LATTICE_ROWS_FULL = 11  # triangular 11x11: 121 nodes, 320 bonds
LATTICE_ROWS_QUICK = 6  # 36 nodes, 85 bonds
STEPS_FULL = 100
STEPS_QUICK = 50
TARGET = 0.01
TARGETS_ALSO = (0.5, 0.1, 0.03)  # looser targets the FD / in situ ratio is also reported at
# (label, trainer, options); the label is what tables and JSON call the method
RUNS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("insitu", "insitu", {}),
    ("coupled", "coupled", {"nudge": "target"}),
    ("coupled-matched", "coupled", {"nudge": "matched"}),
    ("pat", "pat", {}),
    ("spsa", "spsa", {}),
    ("fd", "fd", {}),
)
BIG = 100  # bonds above which methods in --stop-at-target stop at the target


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, help=f"updates per method (default {STEPS_FULL}; "
                   f"{STEPS_QUICK} with --quick)")  # fmt: skip
    p.add_argument("--target", type=float, default=TARGET,
                   help="target loss as a fraction of the initial loss (default 0.01)")  # fmt: skip
    p.add_argument("--profile", default="ideal", choices=("ideal", "realistic", "harsh"))
    add_element(p)
    p.add_argument("--lr", type=float, default=1.0, help="Adam step, N/m (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rows", type=int, help="lattice rows = cols (default 11; 6 with --quick)")
    p.add_argument("--stop-at-target", default="fd",
                   help="comma-separated methods that stop at the target on networks above "
                   f"{BIG} bonds (default fd; '' = none)")  # fmt: skip
    p.add_argument("--methods", help=argparse.SUPPRESS)  # tests: a subset of the labels


def network_path() -> Path:
    from insitu.resources import networks_dir

    return networks_dir() / f"{LI_MAO}.toml"


def lattice(rows: int) -> Any:
    from insitu.network.generate import to_toml, triangular
    from insitu.network.schema import parse_network

    return parse_network(
        to_toml(triangular(rows, n_inputs=1, n_outputs=2)), f"triangular-{rows}x{rows}"
    )


def teacher_stiffness(net: Any) -> np.ndarray:
    """The teacher: bonds whose midpoint lies left of the median at k_min, the others at k_max."""
    mid = 0.5 * (net.positions[net.bonds[:, 0]] + net.positions[net.bonds[:, 1]])
    return np.where(mid[:, 0] < np.median(mid[:, 0]), net.k_min, net.k_max)


def teacher_task(net: Any) -> Any:
    """5 g at the default io set's input; targets: the teacher lattice's outputs there."""
    from insitu.tasks import MSE, Task
    from insitu.tasks.reference import MAX_FORCE
    from insitu.trainers.insilico import Model

    x = np.array([[-MAX_FORCE]])
    idx = np.array([0])
    probe = Task(name="sag", io="default", inputs=x, targets=np.zeros((1, 2)), train=idx,
                 test=idx, loss=MSE())  # fmt: skip
    m = Model(net, probe)
    targets = m.outputs(m.forward(m.equilibrium(teacher_stiffness(net)), idx))
    return Task(
        name="sag",
        io="default",
        inputs=x,
        targets=targets,
        train=idx,
        test=idx,
        loss=MSE(),
        description="5 g at the middle-row input -> u_y at the two bottom-row outputs = those of "
        "the same lattice with its left half of bonds at k_min and its right half at k_max",
        defaults={"lr": 1.0, "batch": 1, "epochs": 100},
    )


class _Stop(Exception):
    """Raised from the tracker to end a run at the target."""


@dataclass
class _Point:
    loadings: int  # learning loadings spent so far
    loss: float  # true loss after this many loadings (physics core at the world's stiffness)
    method_loss: float  # the method's own estimate, before the update
    rig_s: float = 0.0  # rig time the learning has taken so far (the boards' virtual clock)


def _tracker(lab: Any, rig: Any, model: Any, task: Any, target: float, stop: bool) -> Any:
    from insitu.trainers.common import Callback

    class Tracker(Callback):
        def __init__(self) -> None:
            self.last = 0
            self.last_t = 0.0
            self.rig_s = 0.0
            self.spent = 0
            self.points: list[_Point] = []
            self.steps: list[int] = []

        def true_loss(self) -> float:
            eq = model.equilibrium(lab.world.stiffness())
            return float(model.evaluate(eq, task.train)[0])

        def on_epoch(self, record: Any) -> None:  # scores are not learning: skip them
            if not self.points:
                self.points.append(_Point(0, self.true_loss(), float("nan")))
            self.last = rig.counters.loadings
            self.last_t = lab.clock.now()

        def on_step(self, info: Any) -> None:
            now = rig.counters.loadings
            self.steps.append(now - self.last)
            self.spent += now - self.last
            self.last = now
            t = lab.clock.now()  # settling, sampling, the nodes' work: what a rig spends
            self.rig_s += t - self.last_t
            self.last_t = t
            self.points.append(
                _Point(self.spent, self.true_loss(), float(info.loss), rig_s=self.rig_s)
            )
            if stop and self.points[-1].loss <= target:
                raise _Stop

    return Tracker()


def run_method(
    net: Any,
    task: Any,
    label: str,
    trainer: str,
    options: dict[str, Any],
    steps: int,
    target_frac: float,
    profile: str,
    lr: float,
    seed: int,
    stop: bool,
) -> dict[str, Any]:
    from insitu.rig.lab import emulated_rig
    from insitu.trainers import method_module
    from insitu.trainers.common import TrainConfig
    from insitu.trainers.insilico import Model

    model = Model(net, task)
    l0 = float(model.evaluate(model.equilibrium(net.k_init), task.train)[0])
    target = target_frac * l0
    lab, rig = emulated_rig(net, profile, seed=seed)
    tr = _tracker(lab, rig, model, task, target, stop)
    cfg = TrainConfig(epochs=steps, batch=1, lr=lr, seed=seed)
    t0 = time.perf_counter()
    stopped = False
    try:
        method_module(trainer).train(
            net, task, cfg, callbacks=[tr], rig=rig, profile=profile, eval_every=10**9, **options
        )
    except _Stop:
        stopped = True
    wall = time.perf_counter() - t0
    pts: list[_Point] = tr.points
    hit = next((p for p in pts if p.loss <= target), None)
    updates_to_target = pts.index(hit) if hit is not None else None
    done = len(pts) - 1
    return {
        "method": label,
        "trainer": trainer,
        "options": options,
        "updates": done,
        "stopped_at_target": stopped,
        "loadings_per_update": float(np.mean(tr.steps)) if tr.steps else 0.0,
        "loadings_per_update_min_max": [int(min(tr.steps)), int(max(tr.steps))]
        if tr.steps
        else [0, 0],
        "initial_loss": pts[0].loss,
        "target_loss": target,
        "updates_to_target": updates_to_target,
        "loadings_to_target": hit.loadings if hit is not None else None,
        "rig_s_to_target": hit.rig_s if hit is not None else None,
        "rig_s_per_update": tr.rig_s / max(1, done),
        "final_loss": pts[-1].loss if done == steps else None,
        "best_loss": min(p.loss for p in pts),
        "train_loadings": tr.spent,
        "train_rig_s": tr.rig_s,
        "curve": {
            "loadings": [p.loadings for p in pts],
            "rig_s": [p.rig_s for p in pts],
            "loss": [p.loss for p in pts],
            "method_loss": [p.method_loss for p in pts],
        },
        "wall_s": wall,
        "wall_s_per_update": wall / max(1, done),
    }


def loss_at(row: dict[str, Any], budget: int) -> tuple[float, int]:
    """(true loss, loadings used) after the last update that fits in ``budget`` loadings."""
    c = row["curve"]
    inside = [(loss, n) for n, loss in zip(c["loadings"], c["loss"], strict=True) if n <= budget]
    return inside[-1]


def first_below(row: dict[str, Any], level: float) -> int | None:
    """Learning loadings spent when the true loss first falls to ``level`` (None: never)."""
    c = row["curve"]
    return next((n for n, v in zip(c["loadings"], c["loss"], strict=True) if v <= level), None)


def run_network(
    net: Any, task: Any, args: argparse.Namespace, steps: int, runs: list[Any]
) -> dict[str, Any]:
    stop_set = {s.strip() for s in (args.stop_at_target or "").split(",") if s.strip()}
    rows = []
    for label, trainer, options in runs:
        stop = label in stop_set and net.n_bonds > BIG
        common = (steps, args.target, args.profile, args.lr, args.seed, stop)
        rows.append(run_method(net, task, label, trainer, options, *common))
    by = {r["method"]: r for r in rows}
    budget = by["insitu"]["train_loadings"] if "insitu" in by else None
    for r in rows:
        if budget is not None:
            r["loss_at_insitu_budget"], r["loadings_used_of_insitu_budget"] = loss_at(r, budget)
    ratio = None
    by_target = []
    if "insitu" in by and "fd" in by:
        a, b = by["insitu"]["loadings_to_target"], by["fd"]["loadings_to_target"]
        ratio = b / a if a and b else None
        # the same ratio for looser targets, read off the same curves (FD may have stopped at
        # the main target, so only targets at or above it)
        l0 = rows[0]["initial_loss"]
        for f in sorted({*TARGETS_ALSO, args.target}, reverse=True):
            if f < args.target:
                continue
            a, b = (first_below(by[m], f * l0) for m in ("insitu", "fd"))
            by_target.append(
                {"fraction": f, "insitu": a, "fd": b, "ratio": b / a if a and b else None}
            )
    return {
        "network": net.name,
        "nodes": net.n_nodes,
        "bonds": net.n_bonds,
        "task": task.name,
        "task_description": task.description,
        "initial_loss": rows[0]["initial_loss"],
        "target_loss": rows[0]["target_loss"],
        "insitu_budget_loadings": budget,
        "fd_over_insitu_loadings_to_target": ratio,
        "fd_over_insitu_by_target": by_target,
        "fd_over_insitu_loadings_per_update": (
            by["fd"]["loadings_per_update"] / by["insitu"]["loadings_per_update"]
            if "fd" in by and "insitu" in by
            else None
        ),
        "rows": rows,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from insitu.bench import machine_info
    from insitu.cli.element import element_profile

    args.profile = element_profile(args)
    from insitu.network.schema import load_network
    from insitu.tasks import make_task

    steps = args.steps if args.steps is not None else (STEPS_QUICK if args.quick else STEPS_FULL)
    rows_n = args.rows if args.rows is not None else (
        LATTICE_ROWS_QUICK if args.quick else LATTICE_ROWS_FULL
    )  # fmt: skip
    runs = list(RUNS)
    if args.methods:
        want = [m.strip() for m in args.methods.split(",") if m.strip()]
        runs = [r for r in RUNS if r[0] in want]
    lm = load_network(network_path())
    big = lattice(rows_n)
    t0 = time.perf_counter()
    nets = [
        run_network(lm, make_task("behaviour", lm, args.seed), args, steps, runs),
        run_network(big, teacher_task(big), args, steps, runs),
    ]
    return {
        "benchmark": "methods",
        "quick": bool(args.quick),
        "profile": args.profile,
        "steps": steps,
        "target_fraction": args.target,
        "lr": args.lr,
        "seed": args.seed,
        "machine": machine_info(),
        "methods": nets,
        "wall_s": time.perf_counter() - t0,
    }


# ----------------------------------------------------------------------------- output

LABELS = {
    "insitu": "in situ",
    "coupled": "coupled (classic nudge)",
    "coupled-matched": "coupled (matched nudge)",
    "pat": "PAT",
    "spsa": "SPSA",
    "fd": "finite differences",
}


def _g(v: float | None, fmt: str = ".3g") -> str:
    return "—" if v is None else format(v, fmt)


def _n(v: float | None) -> str:
    return "not reached" if v is None else f"{v:,.0f}"


def summary(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"methods benchmark: {result['profile']} profile, {result['steps']} updates, target "
        f"{result['target_fraction']:g} x initial loss; {m['cpu']} ({m['cores']} cores)",
    ]
    for net in result["methods"]:
        lines.append(
            f"{net['network']} ({net['bonds']} bonds), task {net['task']}: initial loss "
            f"{net['initial_loss']:.3g}, target {net['target_loss']:.3g}"
        )
        lines.append(
            "  method                     loadings/update  updates to target  loadings to target"
            "  rig s to target  final loss"
        )
        for r in net["rows"]:
            lines.append(
                f"  {LABELS.get(r['method'], r['method']):<26} {r['loadings_per_update']:>15.1f}"
                f"  {_n(r['updates_to_target']):>17}  {_n(r['loadings_to_target']):>18}"
                f"  {_g(r.get('rig_s_to_target')):>15}  {_g(r['final_loss'])}"
            )
        lines.append(
            f"  FD / in situ loadings to target: {_g(net['fd_over_insitu_loadings_to_target'])}"
        )
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    out = [
        f"Profile `{result['profile']}`, Adam lr {result['lr']:g} N/m, batch 1, seed "
        f"{result['seed']}, {result['steps']} updates per method; target = "
        f"{result['target_fraction']:g} × the initial loss. Loss = MSE in mm² (the true loss at "
        "the world's stiffness after each update).",
        "",
    ]
    for net in result["methods"]:
        out += [
            f"**{net['network']}** ({net['nodes']} nodes, {net['bonds']} bonds), task "
            f"`{net['task']}`: initial loss {net['initial_loss']:.3g}, target "
            f"{net['target_loss']:.3g}; in situ's budget {net['insitu_budget_loadings']:,} "
            "loadings.",
            "",
            "| method | loadings per update | updates to target | loadings to target "
            "| rig s per update | rig s to target "
            f"| loss after {result['steps']} updates | loss at in situ's budget "
            "| wall s per update |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in net["rows"]:
            after = _g(r["final_loss"])
            if r["final_loss"] is None and r["stopped_at_target"]:
                after = f"stopped at target ({r['updates']} updates)"
            used = r.get("loadings_used_of_insitu_budget")
            at_budget = _g(r.get("loss_at_insitu_budget"))
            if used is not None and used == 0:
                at_budget += " (no update fits)"
            out.append(
                f"| {LABELS.get(r['method'], r['method'])} | {r['loadings_per_update']:.1f} "
                f"| {_n(r['updates_to_target'])} | {_n(r['loadings_to_target'])} "
                f"| {_g(r.get('rig_s_per_update'))} | {_g(r.get('rig_s_to_target'))} | {after} "
                f"| {at_budget} | {r['wall_s_per_update']:.3g} |"
            )
        out += [
            "",
            f"FD / in situ: **{_g(net['fd_over_insitu_loadings_to_target'])}×** the loadings "
            f"to the target ({_g(net['fd_over_insitu_loadings_per_update'])}× per update). "
            "At other targets (fraction of the initial loss: FD / in situ loadings): "
            + ", ".join(
                f"{t['fraction']:g}: {_n(t['fd'])} / {_n(t['insitu'])} = {_g(t['ratio'])}×"
                for t in net["fd_over_insitu_by_target"]
            )
            + ".",
            "",
        ]
    out.append(f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, numpy "
               f"{m['numpy']}; wall time {result['wall_s']:.0f} s.")  # fmt: skip
    return "\n".join(out) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = result["methods"]
    fig, axes = plt.subplots(1, len(nets), figsize=(5.2 * len(nets), 4.2), dpi=120, squeeze=False)
    styles = {"insitu": "C0-", "coupled": "C1-", "coupled-matched": "C1--", "pat": "C2-",
              "spsa": "C4-", "fd": "C3-"}  # fmt: skip
    for ax, net in zip(axes[0], nets, strict=True):
        for r in net["rows"]:
            c = r["curve"]
            x = np.maximum(np.asarray(c["loadings"], dtype=float), 0.5)  # update 0 at 0.5
            ax.loglog(x, c["loss"], styles.get(r["method"], "-"), lw=1.4,
                      label=LABELS.get(r["method"], r["method"]))  # fmt: skip
            if r["loadings_to_target"]:
                ax.plot(r["loadings_to_target"], net["target_loss"], "k|", ms=10)
        ax.axhline(net["target_loss"], color="grey", lw=0.8, ls=":", label="target")
        ratio = net["fd_over_insitu_loadings_to_target"]
        ax.set_title(
            f"{net['network']} ({net['bonds']} bonds): FD / in situ to target = {_g(ratio)}×",
            fontsize=9,
        )
        ax.set_xlabel("physical loadings spent on learning (update 0 drawn at 0.5)")
        ax.set_ylabel("loss (true, at the world's stiffness)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
