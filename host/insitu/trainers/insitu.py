"""In-situ backpropagation over a Rig: the network computes its own gradient (DESIGN.md §4).

Per mini-batch, for each sample s:

1. input forces on (everything else off) → broadcast ``measure forward tag=s``; every node
   stores its bonds' elongations e(s); the output boards report their displacements;
2. the host computes ∂L/∂u at the outputs — the only gradient it computes — turns the inputs
   off and applies σ·(−∂L/∂u) at the outputs, σ chosen so the largest adjoint force is
   ``adjoint_peak`` (the actuators' useful range); broadcast ``measure adjoint tag=s
   scale=1/σ``: every node adds e(s)·e_adj/σ, the unscaled product, to its accumulators;

then one broadcast ``update rule=adjoint opt=adam batch=B``: every node steps on the batch mean
of its own accumulators and clips to its own bounds. Host messages per sample: the input and
output forces and two measure broadcasts — independent of the number of bonds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from insitu.network.schema import Network, Port
from insitu.rig.session import Rig
from insitu.tasks.base import Task
from insitu.trainers import protocol
from insitu.trainers.common import TrainConfig, TrainResult
from insitu.trainers.protocol import BoardSteps, Method, Plan, Step, hyper
from insitu_node.learning.convention import adjoint_force

# dL/du at the outputs of one sample from its measured output displacements: (loss, grad)
LossGrad = Callable[[np.ndarray, int], tuple[float, np.ndarray]]

ADJOINT_PEAK_N = 0.049  # 5 g: the largest adjoint force, as large as the inputs


@dataclass(frozen=True)
class Phases:
    """How each physical loading is measured."""

    settle_ms: int = 0  # wait after a load change before sampling (≈ 5 τ on a real bench)
    n: int = 1  # conversions averaged per phase
    adjoint_peak: float = ADJOINT_PEAK_N  # largest adjoint force, newtons
    # readings smaller than this (m) are taken as this, sign kept: a sensor reading 0 says
    # |u| < its resolution, not u = 0, and a loss of ln|u| must not see 1/0 (kit Hall: ~1 µm)
    u_floor: float = 0.0
    # re-zero the strain channels every this many epochs (0: only at the start): HX711
    # bridges drift (~2 counts/s realistic), and 100 epochs is ~30 h of bench time
    tare_every: int = 0
    # settle until still (counts; 0: wait settle_ms): each node starts sampling once its
    # gauges' 200 ms window means move by at most this much, settle_ms being the cap
    calm: int = 0

    def how(self) -> dict[str, int]:
        """How each loading is measured, as Rig.measure takes it."""
        return {"settle_ms": self.settle_ms, "n": self.n, "calm": self.calm}


@dataclass
class BatchResult:
    loss: float  # mean loss of the batch's forward passes (before the update)
    outputs: np.ndarray  # (B, n_out) measured output displacements
    loadings: int  # physical phases measured


def forward(
    rig: Rig,
    inputs: Sequence[Port],
    outputs: Sequence[Port],
    x: np.ndarray,
    tag: int,
    phases: Phases,
) -> np.ndarray:
    """Apply one sample's input forces (all else off), measure, return output displacements."""
    rig.apply_forces({p: float(f) for p, f in zip(inputs, x, strict=True)})
    m = rig.measure("forward", tag=tag, **phases.how())
    return floored(m.outputs(outputs), phases.u_floor)


def floored(u: np.ndarray, floor: float) -> np.ndarray:
    """Output displacements with |u| raised to ``floor``, sign kept (Phases.u_floor)."""
    if floor > 0:
        return np.where(u >= 0, 1.0, -1.0) * np.maximum(np.abs(u), floor)
    return u


def adjoint(rig: Rig, outputs: Sequence[Port], dL_du: np.ndarray, tag: int, phases: Phases) -> None:
    """Inject −∂L/∂u at the outputs, scaled to the actuator range, and measure the adjoint."""
    peak = float(np.max(np.abs(dL_du))) if len(dL_du) else 0.0
    sigma = phases.adjoint_peak / peak if peak > 0 else 1.0
    f = adjoint_force(sigma * np.asarray(dL_du, dtype=float))  # the convention's sign
    rig.apply_forces({p: float(fp) for p, fp in zip(outputs, f, strict=True)})
    rig.measure("adjoint", tag=tag, scale=1.0 / sigma, **phases.how())


def accumulate_batch(
    rig: Rig,
    inputs: Sequence[Port],
    outputs: Sequence[Port],
    X: np.ndarray,
    y: np.ndarray,
    loss_grad: LossGrad,
    phases: Phases,
) -> BatchResult:
    """Forward and adjoint phase for every sample; the nodes accumulate Σ e·e_adj."""
    before = rig.counters.loadings
    losses = []
    outs = []
    for s in range(len(X)):
        tag = s + 1
        u = forward(rig, inputs, outputs, X[s], tag, phases)
        loss, g = loss_grad(u, y[s])
        adjoint(rig, outputs, np.asarray(g, dtype=float), tag, phases)
        losses.append(loss)
        outs.append(u)
    return BatchResult(float(np.mean(losses)), np.array(outs), rig.counters.loadings - before)


# ------------------------------------------------------------------------- the method


@dataclass
class InSituResult(TrainResult):
    """A TrainResult plus what the bench spent: loadings (phases) and messages."""

    measurements: int = 0  # physical loadings (measure phases), tare and evaluation included
    counters: dict = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)  # sensor faults and frozen bonds, per board
    recoveries: int = 0  # rollbacks to a checkpoint (reboots, exchanges that gave up)


def evaluate(rig: Rig, task: Task, idx: np.ndarray, phases: Phases) -> tuple[float, float | None]:
    """(mean loss, accuracy) of samples idx from forward phases only.

    A forward phase stores elongations under a tag but never touches the accumulators, so an
    evaluation between batches leaves the nodes' learning state as it was.
    """
    io = rig.network.io_set(task.io)
    U = np.array([forward(rig, io.inputs, io.outputs, task.inputs[s], 0, phases) for s in idx])
    loss, _ = task.value_and_grad(U, idx)
    return float(np.mean(loss)), task.accuracy(U, idx)


@dataclass(frozen=True)
class Options(protocol.Options):
    pass  # all in the config (TrainConfig) and the phases


def per_sample_step(rig: Rig, ph: Phases, task: Task, config: TrainConfig,
                    idx: np.ndarray) -> Step:  # fmt: skip
    """Forward and adjoint phase of every sample idx, then ``update rule=adjoint`` on every
    node (also the superposed method's fallback). ``Step.grad`` is NaN: the host never sees
    per-bond gradients here."""
    io = rig.network.io_set(task.io)
    X, y = task.inputs[idx], task.targets[idx]
    b = accumulate_batch(rig, io.inputs, io.outputs, X, y, task.loss_grad, ph)
    rep = rig.update(
        rule="adjoint", lr=config.lr, opt=config.optimiser, batch=len(X), **hyper(config)
    )
    return Step(b.loss, np.full(rig.network.n_bonds, np.nan), rep.max_dk, rep.frozen)


def plan(net: Network, task: Task, config: TrainConfig, opts: Options) -> Plan:
    """``per_sample_step`` on every mini-batch."""
    return BoardSteps(lambda rig, ph, idx, n: per_sample_step(rig, ph, task, config, idx))


def default_phases(net: Network, profile: Any) -> Phases:
    """How boards of ``profile`` (a name, a Profile, None for ideal) are measured unless a
    caller says otherwise: settle 10 τ, a displacement floor and a re-tare every epoch on
    anything but ideal parts. The one place phase defaults come from a profile."""
    real = profile not in (None, "ideal")
    return Phases(
        settle_ms=settle_ms_for(net, "ideal" if profile is None else profile),
        u_floor=1e-6 if real else 0.0,
        tare_every=1 if real else 0,
    )


def settle_ms_for(net: Network, profile: Any) -> int:
    """10 τ: the previous phase's residual is e^-10 ≈ 5e-5 of the step.

    5 τ is not enough: after a forward phase the adjoint phase still carries 0.7 % of the
    forward elongation, which adds a bias ∝ e² of one sign to every bond's product — on Iris
    (whose gradient is a small difference of per-class terms) that stalls learning.
    """
    if profile == "ideal":
        return 0
    return int(round(10 * net.relaxation_time * 1000))


METHOD = Method(
    "insitu", "in-situ backpropagation: forward and adjoint phases, the nodes compute their "
    "gradient", Options, profile="ideal", plan=plan,
)  # fmt: skip
train = METHOD.train
