"""Coupled learning / equilibrium propagation over a Rig (Stern et al. 2021; DESIGN.md §2, §4).

Per mini-batch, for each sample s (2 loadings; 3 with ``symmetric``):

1. input forces on, outputs free → ``measure free tag=s``: every node stores e_F(s); the output
   boards report u_F;
2. the host picks the nudge δ (below), clamps every output DOF at u_F + η·δ (inputs stay on)
   → ``measure clamped tag=s eta=η scale=σ``: every node adds σ·½(e_C² − e_F²)/η;
   (``symmetric``: also clamp at u_F − η·δ and ``measure clamped ... scale=−σ``, which cancels
   the O(η) bias exactly in a linear network);
3. release the clamps;

then one broadcast ``update rule=coupled batch=B`` (2B with ``symmetric``). Everything per bond
happens on the nodes; the host only reads outputs and moves clamps.

The nudge δ (the host writes it as δ = −s·∂L/∂u with a positive per-sample s and sends σ = 1/s,
so every sample contributes on the same scale):

- ``nudge="target"`` (classic coupled learning): for an MSE task, δ = u_target − u_F and the
  clamp sits at ``nudged_target(u_F, u_target, η)`` (s = unit²·n_out/2). For any other loss (Iris:
  there are no displacement targets) δ = −s·∂L/∂u, the direction that lowers the task loss to
  first order, with s = max|u_F| / max|∂L/∂u| so that η is the nudge relative to the outputs'
  own displacement. For MSE the two agree up to s.
- ``nudge="matched"``: δ = −s·G·∂L/∂u, where G = ∂u_out/∂f_out is the outputs' compliance,
  measured once per update with one loading per output (inputs off, a force at one output).

What the contrast converges to (linear network, derivation in docs/methods.md): clamping the
outputs at u_F + η·δ with the inputs on gives e_C = e_F + η·e_w, with e_w the elongations of the
network whose outputs are displaced by δ and nothing else loaded. So, exactly,

    σ·½(e_C² − e_F²)/η = σ·e_F·e_w + (η/2)·σ·e_w²,

an O(η) bias that is ≥ 0 on every bond (it pushes every stiffness down). The outputs displaced
by δ carry the force r = G⁻¹δ, so the η → 0 limit is the adjoint gradient with f_adj = G⁻¹δ/s:

- ``target``: the adjoint gradient with f_adj = G⁻¹(u_T − u_F), i.e. the exact MSE gradient
  preconditioned by the outputs' stiffness G⁻¹ (the gradient of ½(u − u_T)ᵀG⁻¹(u − u_T) with G
  held at its present value): parallel to the exact gradient for one output, a
  G⁻¹-weighted direction for several (on li-mao at k_init: cos 0.886 behaviour, 0.950
  regression, 0.9998 Iris);
- ``matched``: δ = G·f_adj·s is the adjoint problem's own output displacement, e_w = s·e_adj,
  and the limit is the exact ∂L/∂k for any loss; the bias is (η/2)·s·e_adj².
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from insitu.network.schema import Network, Port
from insitu.rig.session import Rig
from insitu.tasks.base import MSE, Task
from insitu.trainers import protocol
from insitu.trainers.common import TrainConfig
from insitu.trainers.insitu import ADJOINT_PEAK_N, Phases, floored
from insitu.trainers.protocol import BoardSteps, Method, Plan, Step, hyper, option
from insitu_node.learning.convention import adjoint_force, nudged_target

ETA = 0.1  # nudge: fraction of the way from u_F to the target (docs/methods.md: bias ∝ η)
NUDGES = ("target", "matched")


@dataclass
class CoupledBatch:
    loss: float  # mean loss of the free states (before the update)
    outputs: np.ndarray  # (B, n_out) free output displacements
    loadings: int
    count: int  # samples the nodes accumulated (2B with symmetric)


def output_compliance(
    rig: Rig, outputs: Sequence[Port], phases: Phases, f0: float = ADJOINT_PEAK_N
) -> np.ndarray:
    """G[i, j] = ∂u_i/∂f_j at the outputs (m/N): one loading per output, inputs off."""
    G = np.zeros((len(outputs), len(outputs)))
    for j, p in enumerate(outputs):
        rig.apply_forces({p: f0})
        m = rig.measure("forward", tag=0, **phases.how())
        G[:, j] = m.outputs(outputs) / f0
    return G


def nudge_positions(
    task: Task,
    u_free: np.ndarray,
    target: object,
    dL_du: np.ndarray,
    eta: float,
    G: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(clamp positions u_F + η·δ, δ, s) for one sample, with δ = −s·(G·)∂L/∂u, s > 0."""
    g = np.asarray(dL_du, dtype=float)
    if G is None and isinstance(task.loss, MSE) and np.shape(target) == u_free.shape:
        t = np.asarray(target, dtype=float)
        s = task.loss.unit**2 * u_free.size / 2.0  # MSE: ∂L/∂u = 2(u − t)/(unit²·n_out)
        return nudged_target(u_free, t, eta), t - u_free, s
    d = adjoint_force(g if G is None else G @ g)  # the direction an adjoint force pushes
    peak = float(np.max(np.abs(d))) if d.size else 0.0
    scale_u = float(np.max(np.abs(u_free))) if u_free.size else 0.0
    s = scale_u / peak if peak > 0 and scale_u > 0 else 1.0
    delta = s * d
    return nudged_target(u_free, u_free + delta, eta), delta, s


def accumulate_batch(
    rig: Rig,
    task: Task,
    idx: np.ndarray,
    eta: float,
    phases: Phases,
    nudge: str = "target",
    symmetric: bool = False,
) -> CoupledBatch:
    """Free and clamped phases for the samples idx; the nodes accumulate the contrast."""
    if nudge not in NUDGES:
        raise ValueError(f"nudge must be one of {', '.join(NUDGES)}, not {nudge!r}")
    if not eta > 0:
        raise ValueError(f"eta must be > 0, got {eta}")
    io = rig.network.io_set(task.io)
    before = rig.counters.loadings
    G = output_compliance(rig, io.outputs, phases) if nudge == "matched" else None
    losses, outs = [], []
    count = 0
    for n, s_idx in enumerate(idx):
        tag = n + 1
        rig.apply_forces({p: float(f) for p, f in zip(io.inputs, task.inputs[s_idx], strict=True)})
        m = rig.measure("free", tag=tag, **phases.how())
        u_raw = m.outputs(io.outputs)
        u = floored(u_raw, phases.u_floor)
        loss, g = task.loss_grad(u, task.targets[s_idx])
        _, delta, s = nudge_positions(task, u, task.targets[s_idx], g, eta, G)
        signs = (1.0, -1.0) if symmetric else (1.0,)
        for sign in signs:
            # clamp relative to what the sensors read (not the floored value the loss sees)
            for p, uc in zip(io.outputs, u_raw + sign * eta * delta, strict=True):
                rig.clamp(p, float(uc))
            rig.measure("clamped", tag=tag, eta=eta, scale=sign / s, **phases.how())
            count += 1
        rig.release()
        losses.append(loss)
        outs.append(u)
    return CoupledBatch(
        float(np.mean(losses)), np.array(outs), rig.counters.loadings - before, count
    )


def loadings_per_update(
    batch: int, n_outputs: int, nudge: str = "target", symmetric: bool = False
) -> int:
    """Physical loadings one update costs: (2 or 3)·B (+ n_out for the matched nudge)."""
    return (3 if symmetric else 2) * batch + (n_outputs if nudge == "matched" else 0)


@dataclass(frozen=True)
class Options(protocol.Options):
    eta: float = option(ETA, "nudge η, the clamp's fraction of the way from the free "
                        "state (bias ∝ η)", gt=0.0, le=10.0)  # fmt: skip
    nudge: str = option("target", "target (classic) or matched (the outputs' "
                        "compliance; n_out more loadings per update)", choices=NUDGES)  # fmt: skip
    symmetric: bool = option(False, "also clamp at -η and average (3 loadings per "
                             "sample; cancels the O(η) bias of a linear network)")  # fmt: skip


def plan(net: Network, task: Task, config: TrainConfig, opts: Options) -> Plan:
    """Free and clamped phases of the batch, then ``update rule=coupled`` on every node.
    ``StepInfo.grad`` is NaN: the per-bond contrast lives on the nodes."""
    unknown = np.full(net.n_bonds, np.nan)

    def step(rig: Rig, ph: Phases, idx: np.ndarray, n: int) -> Step:
        b = accumulate_batch(rig, task, idx, opts.eta, ph, opts.nudge, opts.symmetric)
        rep = rig.update(
            rule="coupled", lr=config.lr, opt=config.optimiser, batch=b.count, **hyper(config)
        )
        return Step(b.loss, unknown, rep.max_dk, rep.frozen)

    return BoardSteps(step)


METHOD = Method("coupled", "coupled learning: free and nudged (clamped) phases", Options,
                plan=plan)  # fmt: skip
train = METHOD.train
