"""The training loop the rig-based methods other than in-situ backprop share (docs/methods.md).

A method supplies one function, ``step(idx) -> Step``, that spends physical loadings on the
mini-batch ``idx`` and leaves the boards at their new stiffness. ``run`` does the rest exactly
as ``insitu.train`` does it: tare, the same seeded batches as ``insilico.train``, scores from
forward phases at epoch 0, every ``eval_every`` epochs and at the end, callbacks, and the
bill: ``measurements`` (every loading, scores and tare included) and ``train_loadings`` (the
loadings the learning itself spent, which is what methods are compared by).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from insitu.network.schema import Network
from insitu.rig.session import Rig
from insitu.tasks.base import Task
from insitu.trainers.common import Callback, EpochRecord, StepInfo, TrainConfig, notify
from insitu.trainers.insitu import InSituResult, Phases, evaluate, forward
from insitu.trainers.optim import Optimiser
from insitu.trainers.protocol import Context, MakeStep, Step, StepFn, hyper

__all__ = ["MakeStep", "MethodResult", "Step", "StepFn", "batch_outputs", "host_steps", "hyper",
           "run"]  # fmt: skip

# (rig, batch, k the boards hold, phases) -> (batch-mean loss, dL/dk): the host's estimate
HostGradient = Callable[[Rig, np.ndarray, np.ndarray, Phases], tuple[float, np.ndarray]]


@dataclass
class MethodResult(InSituResult):
    """InSituResult plus the loadings spent on learning, per step (scores excluded)."""

    train_loadings: int = 0
    step_loadings: list[int] = field(default_factory=list)

    def summary(self) -> dict:
        d = super().summary()
        d["measurements"] = self.measurements
        d["train_loadings"] = self.train_loadings
        d["loadings_per_step"] = (
            self.train_loadings / len(self.step_loadings) if self.step_loadings else 0.0
        )
        return d


def batch_outputs(
    rig: Rig, task: Task, idx: np.ndarray, phases: Phases, tag: int = 0
) -> tuple[float, np.ndarray]:
    """Forward phases for the samples idx at the boards' present stiffness: (mean loss, U)."""
    io = rig.network.io_set(task.io)
    U = np.array([forward(rig, io.inputs, io.outputs, task.inputs[s], tag, phases) for s in idx])
    loss, _ = task.value_and_grad(U, idx)
    return float(np.mean(loss)), U


def host_steps(net: Network, config: TrainConfig, gradient: HostGradient) -> MakeStep:
    """The step of a method whose host estimates the gradient and commands every stiffness
    (FD, PAT): ``gradient`` at the stiffness the host last commanded, the host's optimiser
    (identical to the nodes'), then ``set`` on every board."""

    def make_step(rig: Rig, ph: Phases) -> StepFn:
        k = rig.stiffness()  # from here on the host tracks what it commands
        opt = Optimiser(
            net.n_bonds, config.optimiser, config.lr, config.mu, config.b1, config.b2, config.eps
        )

        def step(idx: np.ndarray) -> Step:
            nonlocal k
            loss, g = gradient(rig, idx, k, ph)
            k, rep = opt.step(k, g, net.k_min, net.k_max)
            rig.set_stiffness(k)
            return Step(loss, g, rep.max_dk, rep.at_bound)

        return step

    return make_step


def run(
    method: str,
    net: Network,
    task: Task,
    config: TrainConfig,
    make_step: MakeStep,
    callbacks: Sequence[Callback],
    ctx: Context,
) -> MethodResult:
    """Train with ``make_step``'s method on ``ctx.rig`` (opened by the caller) with
    ``ctx.phases`` (tare_every is the in-situ loop's alone: this loop tares once)."""
    rig, phases, eval_every = ctx.rig, ctx.phases, ctx.eval_every
    if rig is None or phases is None:
        raise TypeError(f"method {method}: the rig loop needs a rig and phases")
    rig.tare(settle_ms=phases.settle_ms, n=phases.n)
    rig.reset(opt=True)
    k = rig.stiffness()
    rng = np.random.default_rng([config.seed, 0x1A5])  # as insilico.train: same batches
    result = MethodResult(method, task.name, config, k.copy(), k.copy())
    notify(callbacks, "on_start", net, task, config, k.copy())
    step_fn = make_step(rig, phases)

    def record(epoch: int) -> None:
        kk = rig.stiffness()
        tr_loss, tr_acc = evaluate(rig, task, task.train, phases)
        te_loss, te_acc = evaluate(rig, task, task.test, phases)
        rec = EpochRecord(epoch, tr_loss, te_loss, tr_acc, te_acc, kk)
        result.history.append(rec)
        notify(callbacks, "on_epoch", rec)

    record(0)
    n_step = 0
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(task.train)
        for start in range(0, order.size, config.batch):
            idx = order[start : start + config.batch]
            before = rig.counters.loadings
            s = step_fn(idx)
            spent = rig.counters.loadings - before
            result.step_loadings.append(spent)
            result.train_loadings += spent
            n_step += 1
            k_now = np.full(net.n_bonds, np.nan)  # reading k back costs a request per board
            notify(
                callbacks,
                "on_step",
                StepInfo(epoch, n_step, idx, s.loss, s.grad, k_now, s.max_dk, s.frozen),
            )
        if epoch == config.epochs or epoch % max(1, eval_every) == 0:
            record(epoch)
    result.k_final = rig.stiffness()
    result.steps = n_step
    result.measurements = rig.counters.loadings
    result.counters = rig.counters.snapshot()
    notify(callbacks, "on_end", result)
    return result
