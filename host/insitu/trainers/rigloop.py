"""What the rig methods other than in-situ backprop share: forward phases of a batch, and the
plan of a method whose host estimates the gradient and commands every stiffness (FD, PAT).
The loop they all run in is trainers/loop.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from insitu.network.schema import Network
from insitu.rig.session import Rig
from insitu.tasks.base import Task
from insitu.trainers.common import TrainConfig
from insitu.trainers.insitu import Phases, forward
from insitu.trainers.optim import Optimiser
from insitu.trainers.protocol import Plan, Step, hyper

__all__ = ["HostSteps", "Step", "batch_outputs", "hyper"]

# (rig, batch, k the boards hold, phases) -> (batch-mean loss, dL/dk): the host's estimate
HostGradient = Callable[[Rig, np.ndarray, np.ndarray, Phases], tuple[float, np.ndarray]]


def batch_outputs(
    rig: Rig, task: Task, idx: np.ndarray, phases: Phases, tag: int = 0
) -> tuple[float, np.ndarray]:
    """Forward phases for the samples idx at the boards' present stiffness: (mean loss, U)."""
    io = rig.network.io_set(task.io)
    U = np.array([forward(rig, io.inputs, io.outputs, task.inputs[s], tag, phases) for s in idx])
    loss, _ = task.value_and_grad(U, idx)
    return float(np.mean(loss)), U


class HostSteps(Plan):
    """A method whose host estimates the gradient (``gradient`` at the stiffness the host
    last commanded), steps the host's optimiser (identical to the nodes') and ``set``s every
    board. Its state is the host's: k and the optimiser; the boards hold k and save it."""

    holds = "host"

    def __init__(self, net: Network, config: TrainConfig, gradient: HostGradient) -> None:
        self.net, self.gradient = net, gradient
        self.opt = Optimiser(
            net.n_bonds, config.optimiser, config.lr, config.mu, config.b1, config.b2, config.eps
        )
        self._k = np.asarray(net.k_init, dtype=float)

    def start(self, rig: Rig | None, phases: Phases | None) -> None:
        super().start(rig, phases)
        assert rig is not None
        self._k = rig.stiffness()  # from here on the host tracks what it commands

    def step(self, idx: np.ndarray, n: int) -> Step:
        assert self.rig is not None and self.phases is not None
        loss, g = self.gradient(self.rig, idx, self._k, self.phases)
        self._k, rep = self.opt.step(self._k, g, self.net.k_min, self.net.k_max)
        self.rig.set_stiffness(self._k)
        return Step(loss, g, rep.max_dk, rep.at_bound)

    def k(self) -> np.ndarray:
        return self._k.copy()

    def opt_state(self) -> dict[str, Any]:
        return self.opt.state()

    def restore(self, k: np.ndarray, opt: Mapping[str, Any] | None) -> None:
        self._k = np.array(k, dtype=float)
        if opt is not None:
            self.opt.load(dict(opt))
