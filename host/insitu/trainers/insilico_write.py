"""In-silico training, then write the stiffnesses to the boards and score them physically.

1. ``insilico.train`` on the digital twin (no loading at all);
2. ``set`` the trained stiffnesses on every board (one message per board);
3. forward phases on the whole train and test sets: the physical scores.

The cost in loadings is the scoring alone; what it shows is the sim-to-real gap — on ideal
boards the physical scores equal the twin's, on realistic ones they differ by whatever the
twin does not know (element calibration, sensor gain, geometry). The history holds two
physical records: epoch 0 (the boards before the write) and the last epoch (after it); the
twin's own per-epoch history is kept in ``twin_history``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from insitu.network.schema import Network
from insitu.tasks.base import Task
from insitu.trainers import insilico, protocol, rigloop
from insitu.trainers.common import (
    Callback,
    EpochRecord,
    StepInfo,
    TrainConfig,
    notify,
)
from insitu.trainers.insitu import evaluate
from insitu.trainers.protocol import Method

METHOD_NAME = "insilico-write"


@dataclass
class WriteResult(rigloop.MethodResult):
    twin_history: list[EpochRecord] = field(default_factory=list)


class _Steps(Callback):
    """Relays the twin's steps to the caller's callbacks (its epochs are not physical)."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = callbacks

    def on_step(self, info: StepInfo) -> None:
        notify(self.callbacks, "on_step", info)


@dataclass(frozen=True)
class Options(protocol.Options):
    pass  # insilico.train's (the config's); none of its own


def _loop(
    net: Network, task: Task, config: TrainConfig, callbacks: Sequence[Callback],
    ctx: protocol.Context, opts: Options,
) -> WriteResult:  # fmt: skip
    """Train in silico from the boards' present stiffness, write it, score it on the rig
    (twice: before and after the write, whatever ``ctx.eval_every``)."""
    rig, phases = ctx.rig, ctx.phases
    if rig is None or phases is None:
        raise TypeError(f"{METHOD_NAME} needs a rig and phases")
    rig.tare(settle_ms=phases.settle_ms, n=phases.n)
    rig.reset(opt=True)
    k0 = rig.stiffness()
    result = WriteResult(METHOD_NAME, task.name, config, k0.copy(), k0.copy())
    notify(callbacks, "on_start", net, task, config, k0.copy())

    def record(epoch: int, k: np.ndarray) -> None:
        tr_loss, tr_acc = evaluate(rig, task, task.train, phases)
        te_loss, te_acc = evaluate(rig, task, task.test, phases)
        rec = EpochRecord(epoch, tr_loss, te_loss, tr_acc, te_acc, k.copy())
        result.history.append(rec)
        notify(callbacks, "on_epoch", rec)

    record(0, k0)
    twin = insilico.train(net, task, config, [_Steps(callbacks)], k0=k0)
    rig.set_stiffness(twin.k_final)
    result.k_final = rig.stiffness()
    record(config.epochs, result.k_final)
    result.twin_history = twin.history
    result.steps = twin.steps
    result.measurements = rig.counters.loadings
    result.counters = rig.counters.snapshot()
    notify(callbacks, "on_end", result)
    return result


METHOD = Method(METHOD_NAME, "in silico, then write the stiffnesses to the boards and score them",
                Options, loop=_loop)  # fmt: skip
train = METHOD.train
