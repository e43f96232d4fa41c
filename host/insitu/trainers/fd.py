"""Finite differences on the rig: the yardstick that costs one loading per bond per sample.

Per mini-batch, the host measures the batch-mean loss at the present stiffness (B forward
loadings; not with ``central``), then for every bond b in turn: ``set`` that one bond (one
message to its board, ``slot`` = its slot) to k_b + h, forward phases of the batch → L_b, and
``set`` it back. Forward difference: g_b = (L_b − L_0)/h; central: (L(k_b+h) − L(k_b−h))/2h.
Near a bound the step is taken the other way (or shortened), so every `set` stays in
[k_min, k_max]. The host then steps its own optimiser (the in-silico one, identical to the
nodes') and writes the new stiffnesses with ``set`` (one message per board).

Loadings per update: forward B·(bonds + 1); central 2·B·bonds (+ B if a bond sits at a bound).
In-situ backprop needs 2·B whatever the number of bonds. Like PAT, this is a non-local method:
the host computes every per-bond gradient and commands every stiffness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from insitu.network.schema import Board, Network
from insitu.rig.session import Rig
from insitu.tasks.base import Task
from insitu.trainers import protocol, rigloop
from insitu.trainers.common import TrainConfig
from insitu.trainers.insitu import Phases
from insitu.trainers.protocol import Method, option

H = 1.0  # N/m, rounded to whole element steps (li-mao: 15 x 0.06875 = 1.03 N/m); docs/methods.md


def bond_slots(net: Network) -> list[tuple[Board, int]]:
    """(owning board, slot) of every bond, network order."""
    where: list[tuple[Board, int] | None] = [None] * net.n_bonds
    for bd in net.boards:
        for slot, b in enumerate(bd.bonds):
            where[b] = (bd, slot)
    missing = [b for b, w in enumerate(where) if w is None]
    if missing:
        raise ValueError(f"network {net.name}: bond {missing[0]} has no board")
    return [w for w in where if w is not None]


def resolution(rig: Rig) -> np.ndarray:
    """Smallest stiffness step each bond's element can make (N/m; 0 = continuous).

    A servo element takes whole microseconds (the firmware's ``k_to_us`` rounds), so a
    difference of two `set`s is exact only for a whole number of steps: on li-mao-2024,
    68.75 N/m over 1000 µs = 0.06875 N/m. Read from the boards' expected configs.
    """
    net = rig.network
    q = np.zeros(net.n_bonds)
    if rig.configs is None:
        return q
    for bd in net.boards:
        cfg = rig.configs.get(bd.id, {})
        for spec in cfg.get("bonds", ()):
            el = spec.get("element", {})
            table = el.get("table") if el.get("type") == "servo" else None
            if table and len(table) > 1:
                q[bd.bonds[int(spec["slot"])]] = min(
                    abs(k1 - k0) / abs(u1 - u0)
                    for (k0, u0), (k1, u1) in zip(table, table[1:], strict=False)
                    if u1 != u0
                )
    return q


def steps(rig: Rig, h: float) -> np.ndarray:
    """Per-bond finite-difference step: h rounded to a whole number (≥ 1) of element steps."""
    q = resolution(rig)
    return np.where(q > 0, np.maximum(1.0, np.round(h / np.where(q > 0, q, 1.0))) * q, h)


def set_bond(rig: Rig, where: tuple[Board, int], k: float) -> None:
    """One bond's stiffness: one `set` message to the board that owns it."""
    bd, slot = where
    rig.request(bd, "set", {"k": [float(k)], "slot": slot})


def gradient(
    rig: Rig,
    task: Task,
    idx: np.ndarray,
    k: np.ndarray,
    phases: Phases,
    h: float = H,
    central: bool = False,
    bonds: Sequence[int] | None = None,
) -> tuple[float, np.ndarray]:
    """(batch-mean loss at k, finite-difference dL/dk) measured on the rig, which is at k.

    ``bonds``: differentiate only these (the others' entries stay 0) — a cheaper probe of the
    cost per bond, or a block-coordinate variant.
    """
    net = rig.network
    slots = bond_slots(net)
    base: list[float] = []

    def loss0() -> float:
        if not base:
            base.append(rigloop.batch_outputs(rig, task, idx, phases)[0])
        return base[0]

    def loss_at(b: int, dk: float) -> float:
        if dk == 0.0:
            return loss0()
        set_bond(rig, slots[b], k[b] + dk)
        val = rigloop.batch_outputs(rig, task, idx, phases)[0]
        set_bond(rig, slots[b], k[b])
        return val

    if not central:
        loss0()
    g = np.zeros(net.n_bonds)
    mids = []
    hb = steps(rig, h)
    for b in range(net.n_bonds) if bonds is None else bonds:
        # a step shortened at a bound is no longer a whole number of element steps; the
        # bound itself is where the element lands, so the difference stays honest there
        up = min(hb[b], float(net.k_max[b] - k[b]))
        down = min(hb[b], float(k[b] - net.k_min[b]))
        if central:
            pts = (up, -down)
        else:  # forward, or backward where the bond sits (nearly) at its upper bound
            pts = (up if up > 0 and up >= min(hb[b], down) else -down, 0.0)
        span = pts[0] - pts[1]
        if span == 0:  # k_min == k_max: nothing to learn (a backward step has span < 0)
            continue
        l1, l2 = loss_at(b, pts[0]), loss_at(b, pts[1])
        g[b] = (l1 - l2) / span
        mids.append(0.5 * (l1 + l2))
    # central: the base loss is never measured on purpose; the mean midpoint is L0 + O(h²)
    loss = base[0] if base else float(np.mean(mids)) if mids else float("nan")
    return loss, g


def loadings_per_update(n_bonds: int, batch: int, central: bool = False) -> int:
    """For bonds away from their bounds."""
    return 2 * batch * n_bonds if central else batch * (n_bonds + 1)


@dataclass(frozen=True)
class Options(protocol.Options):
    h: float = option(H, "the finite-difference step, N/m (rounded to whole element steps)",
                      flag="--fd-step", gt=0.0, le=1e4)  # fmt: skip
    central: bool = option(False, "central differences (2 loadings per bond per sample; "
                           "second order)")  # fmt: skip


def plan(net: Network, task: Task, config: TrainConfig, opts: Options) -> rigloop.HostSteps:
    """Finite-difference descent: the host's optimiser on the measured differences."""

    def estimate(rig: Rig, idx: np.ndarray, k: np.ndarray, ph: Phases) -> tuple[float, np.ndarray]:
        return gradient(rig, task, idx, k, ph, opts.h, opts.central)

    return rigloop.HostSteps(net, config, estimate)


METHOD = Method("fd", "finite differences: one loading per bond per sample", Options,
                plan=plan, holds="host")  # fmt: skip
train = METHOD.train
