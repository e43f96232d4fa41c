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
from dataclasses import dataclass

import numpy as np

from insitu.network.schema import Port
from insitu.rig.session import Rig

# dL/du at the outputs of one sample from its measured output displacements: (loss, grad)
LossGrad = Callable[[np.ndarray, int], tuple[float, np.ndarray]]

ADJOINT_PEAK_N = 0.049  # 5 g: the largest adjoint force, as large as the inputs


@dataclass(frozen=True)
class Phases:
    """How each physical loading is measured."""

    settle_ms: int = 0  # wait after a load change before sampling (≈ 5 τ on a real bench)
    n: int = 1  # conversions averaged per phase
    adjoint_peak: float = ADJOINT_PEAK_N  # largest adjoint force, newtons


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
    m = rig.measure("forward", tag=tag, settle_ms=phases.settle_ms, n=phases.n)
    return m.outputs(outputs)


def adjoint(rig: Rig, outputs: Sequence[Port], dL_du: np.ndarray, tag: int, phases: Phases) -> None:
    """Inject −∂L/∂u at the outputs, scaled to the actuator range, and measure the adjoint."""
    peak = float(np.max(np.abs(dL_du))) if len(dL_du) else 0.0
    sigma = phases.adjoint_peak / peak if peak > 0 else 1.0
    rig.apply_forces({p: float(-sigma * g) for p, g in zip(outputs, dL_du, strict=True)})
    rig.measure("adjoint", tag=tag, settle_ms=phases.settle_ms, n=phases.n, scale=1.0 / sigma)


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
