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
from insitu.rig.session import Rig, RigError
from insitu.tasks.base import Task
from insitu.trainers import protocol
from insitu.trainers.common import (
    Callback,
    EpochRecord,
    StepInfo,
    TrainConfig,
    TrainResult,
    notify,
)
from insitu.trainers.protocol import Context, MakeStep, Method, Step, StepFn, hyper, option
from insitu_node.learning.convention import adjoint_force

# dL/du at the outputs of one sample from its measured output displacements: (loss, grad)
LossGrad = Callable[[np.ndarray, int], tuple[float, np.ndarray]]

ADJOINT_PEAK_N = 0.049  # 5 g: the largest adjoint force, as large as the inputs
RECOVERIES = 5  # rollbacks allowed per step before a RigError is final (docs/reliability.md)


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
    u = m.outputs(outputs)
    if phases.u_floor > 0:
        u = np.where(u >= 0, 1.0, -1.0) * np.maximum(np.abs(u), phases.u_floor)
    return u


def adjoint(rig: Rig, outputs: Sequence[Port], dL_du: np.ndarray, tag: int, phases: Phases) -> None:
    """Inject −∂L/∂u at the outputs, scaled to the actuator range, and measure the adjoint."""
    peak = float(np.max(np.abs(dL_du))) if len(dL_du) else 0.0
    sigma = phases.adjoint_peak / peak if peak > 0 else 1.0
    f = adjoint_force(sigma * np.asarray(dL_du, dtype=float))  # the convention's sign
    rig.apply_forces({p: float(fp) for p, fp in zip(outputs, f, strict=True)})
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


# ---------------------------------------------------------------------------- the training loop


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
    checkpoints: bool = option(
        False, "every board saves a checkpoint after every update; a failed step rolls back "
        "and is measured again", cli=False,
    )  # fmt: skip


def stepper(net: Network, task: Task, config: TrainConfig, opts: Options) -> MakeStep:
    """Forward and adjoint phase of every sample, then ``update rule=adjoint`` on every node.
    ``Step.grad`` is NaN: the host never sees per-bond gradients in this method."""
    io = net.io_set(task.io)
    unknown = np.full(net.n_bonds, np.nan)

    def make_step(rig: Rig, ph: Phases) -> StepFn:
        def step(idx: np.ndarray) -> Step:
            X, y = task.inputs[idx], task.targets[idx]
            b = accumulate_batch(rig, io.inputs, io.outputs, X, y, task.loss_grad, ph)
            rep = rig.update(
                rule="adjoint", lr=config.lr, opt=config.optimiser, batch=len(X), **hyper(config)
            )
            return Step(b.loss, unknown, rep.max_dk, rep.frozen)

        return step

    return make_step


def _loop(
    net: Network,
    task: Task,
    config: TrainConfig,
    callbacks: Sequence[Callback],
    ctx: Context,
    opts: Options,
) -> InSituResult:
    """Train ``task`` in situ on the boards behind ``ctx.rig`` (opened by the caller, e.g. with
    ``insitu.rig.open_rig``). Same seed → same batches as ``insilico.train``.

    Scores (forward phases on the whole train and test sets) are recorded at epoch 0, every
    ``eval_every`` epochs and at the last one; they cost ``n_samples`` loadings each time.
    ``StepInfo.grad`` is NaN: the host never sees per-bond gradients in this method.

    ``resume`` continues a run after ``resume.step`` steps on boards that booted from the
    flash they saved at that checkpoint (stiffness, strain offsets, optimiser moments and step
    count): no tare, no optimiser reset, and the batch order replayed to that step. At step 0
    the boards are tared again (a host killed in the middle of the first save leaves some
    boards with nothing on flash).

    ``checkpoints``: every board saves its state as checkpoint ``step`` after every update (and
    again after a re-tare); when a step fails — a board rebooted (boot count), a reply never
    came, a board refused — every board is rolled back to the last checkpoint and the step is
    measured again, up to RECOVERIES times (docs/reliability.md).
    """
    rig, phases, eval_every, resume = ctx.rig, ctx.phases, ctx.eval_every, ctx.resume
    checkpoints = opts.checkpoints
    if rig is None or phases is None:
        raise TypeError("in-situ training needs a rig and phases")
    done = 0 if resume is None else resume.step
    if done == 0:  # resumed at step 0 too: a kill in the first save leaves boards unsaved
        rig.tare(settle_ms=phases.settle_ms, n=phases.n)
        rig.reset(opt=True)
    else:  # offsets and moments came back from flash; forget only what was in flight
        rig.forces_off()
        rig.release()
        rig.reset()
    k = rig.stiffness()
    rng = np.random.default_rng([config.seed, 0x1A5])  # as insilico.train: same batches
    result = InSituResult("insitu", task.name, config, k.copy(), k.copy())
    if resume is not None:
        result.history = list(resume.history)
        if resume.history:
            result.k_init = resume.history[0].k.copy()
    notify(callbacks, "on_start", net, task, config, k.copy())
    unknown = np.full(net.n_bonds, np.nan)
    step_fn = stepper(net, task, config, opts)(rig, phases)

    def record(epoch: int) -> None:
        kk = rig.stiffness()
        tr_loss, tr_acc = evaluate(rig, task, task.train, phases)
        te_loss, te_acc = evaluate(rig, task, task.test, phases)
        rig.check_boots()  # a board that restarted mid-score lost its forces and its k: again
        rec = EpochRecord(epoch, tr_loss, te_loss, tr_acc, te_acc, kk)
        result.history.append(rec)
        notify(callbacks, "on_epoch", rec)

    ckpt = done

    def one_step(idx: np.ndarray, nxt: int) -> Step:
        s = step_fn(idx)
        if checkpoints:
            rig.save(nxt)
        return s

    def guarded(what: Callable[..., Any], *args: Any) -> Any:
        """Run one step (or a score) and, with checkpoints, recover from what broke it."""
        for attempt in range(RECOVERIES + 1):
            try:
                if attempt:  # a recovery that fails itself counts as an attempt too
                    result.recoveries += 1
                    rig.recover(ckpt)
                return what(*args)
            except RigError:
                if not checkpoints or attempt == RECOVERIES:
                    raise
        return None

    if checkpoints:
        rig.save(ckpt)
    if not result.history:
        guarded(record, 0)
    step = 0
    for epoch in range(1, config.epochs + 1):
        retare = phases.tare_every and epoch > 1 and (epoch - 1) % phases.tare_every == 0
        if retare and step >= done:  # a resumed epoch keeps the offsets its checkpoint saved
            rig.tare(settle_ms=phases.settle_ms, n=phases.n)
            if checkpoints:
                rig.save(ckpt)  # the checkpoint carries the new offsets
        order = rng.permutation(task.train)  # drawn for skipped epochs too: same stream
        for start in range(0, order.size, config.batch):
            if step < done:
                step += 1
                continue
            idx = order[start : start + config.batch]
            s = guarded(one_step, idx, step + 1)
            step += 1
            ckpt = step
            notify(
                callbacks,
                "on_step",
                StepInfo(epoch, step, idx, s.loss, unknown, unknown, s.max_dk, s.frozen),
            )
        due = epoch == config.epochs or epoch % max(1, eval_every) == 0
        if due and epoch > result.history[-1].epoch:
            guarded(record, epoch)
    result.k_final = rig.stiffness()
    result.steps = step
    result.measurements = rig.counters.loadings
    result.counters = rig.counters.snapshot()
    result.faults = rig.fault_report()
    notify(callbacks, "on_end", result)
    return result


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
    "gradient", Options, profile="ideal", resumes=True, loop=_loop, step=stepper,
)  # fmt: skip
train = METHOD.train
