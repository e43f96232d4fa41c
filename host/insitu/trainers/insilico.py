"""In-silico training: the digital twin of in-situ backpropagation, and its yardstick.

Per mini-batch: one factorisation of K_ff at the current stiffness; the forward problem of the
whole batch as one multi-RHS solve; dL/du_out from the task; the adjoint problem (force
-dL/du at the outputs, inputs off) of the whole batch as a second multi-RHS solve on the same
factorisation; gradient = mean over samples of e * e_adj (Equilibrium.gradient, which uses the
convention module); one optimiser step projected onto [k_min, k_max]. Linear statics only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from insitu.network.schema import Network
from insitu.physics.linear import DenseEquilibrium, Equilibrium, compatibility
from insitu.rig.session import Rig
from insitu.tasks.base import Task
from insitu.trainers import protocol
from insitu.trainers.common import Callback, Resume, TrainConfig, TrainResult
from insitu.trainers.optim import Optimiser
from insitu.trainers.protocol import Method, Plan, Step

METHOD_NAME = "insilico"
# Up to this many free DOFs a dense Cholesky beats sparse LU setup by ~30x (li-mao-2024 has 24).
DENSE_MAX_FREE = 400


Solver = Equilibrium | DenseEquilibrium


class Model:
    """A network bound to one task's io set: loads samples, solves, scores, differentiates."""

    def __init__(self, net: Network, task: Task) -> None:
        self.net = net
        self.task = task
        self.C = compatibility(net.positions, net.bonds)
        self.clamped = net.clamped_dofs()
        self.in_dofs, self.out_dofs = net.iodofs(task.io)
        self.n_dof = net.n_nodes * net.dim
        self.free = np.flatnonzero(~self.clamped)
        self.C_free = self.C[:, self.free].toarray() if self.free.size <= DENSE_MAX_FREE else None
        # MechanismError (a clear message) here, once, rather than a garbage dense solve later
        Equilibrium(self.C, net.k_init, self.clamped, net.node_ids, net.dim)

    def equilibrium(self, k: np.ndarray) -> Solver:
        """One factorisation of K_ff at k, for every solve until k changes."""
        if self.C_free is not None:
            return DenseEquilibrium(self.C_free, self.free, self.n_dof, k)
        return Equilibrium(self.C, k, self.clamped, self.net.node_ids, self.net.dim)

    def forward(self, eq: Solver, idx: np.ndarray) -> np.ndarray:
        """Displacements u (all DOFs x samples) of the samples idx: one multi-RHS solve."""
        F = np.zeros((self.n_dof, idx.size))
        F[self.in_dofs, :] = self.task.inputs[idx].T
        return eq.solve(F)

    def outputs(self, u: np.ndarray) -> np.ndarray:
        """Output displacements as (samples, outputs)."""
        return u[self.out_dofs, :].T

    def evaluate(self, eq: Solver, idx: np.ndarray) -> tuple[float, float | None]:
        U = self.outputs(self.forward(eq, idx))
        loss, _ = self.task.value_and_grad(U, idx)
        return float(np.mean(loss)), self.task.accuracy(U, idx)

    def batch_gradient(
        self, k: np.ndarray, idx: np.ndarray, eq: Solver | None = None
    ) -> tuple[float, np.ndarray]:
        """(mean loss of the batch, dL/dk of that mean) at stiffness k."""
        eq = eq or self.equilibrium(k)
        u = self.forward(eq, idx)
        loss, dl_du = self.task.value_and_grad(self.outputs(u), idx)
        dL_du = np.zeros_like(u)
        dL_du[self.out_dofs, :] = dl_du.T
        per_sample, _ = eq.gradient(u, dL_du)  # (bonds, samples): e * e_adj of each sample
        return float(np.mean(loss)), per_sample.mean(axis=1)


class Twin(Plan):
    """The method on the digital twin: per mini-batch one factorisation, the exact batch
    gradient (``Model.batch_gradient``), one step of the host's optimiser. No boards."""

    holds = "host"
    on_boards = False

    def __init__(self, net: Network, task: Task, config: TrainConfig, k0: np.ndarray | None):
        self.net, self.model = net, Model(net, task)
        start = net.k_init if k0 is None else k0
        self._k = np.clip(np.array(start, dtype=float), net.k_min, net.k_max)
        self.opt = Optimiser(
            net.n_bonds, config.optimiser, config.lr, config.mu, config.b1, config.b2, config.eps
        )
        self._eq: tuple[np.ndarray, Solver] | None = None

    def start(self, rig: Rig | None, phases: Any) -> None:
        super().start(rig, phases)
        if rig is not None:  # in silico, then write: the twin starts where the boards are
            self._k = rig.stiffness()

    def step(self, idx: np.ndarray, n: int) -> Step:
        loss, g = self.model.batch_gradient(self._k, idx)
        self._k, rep = self.opt.step(self._k, g, self.net.k_min, self.net.k_max)
        return Step(loss, g, rep.max_dk, rep.at_bound)

    def score(self, idx: np.ndarray) -> tuple[float, float | None] | None:
        if self._eq is None or not np.array_equal(self._eq[0], self._k):
            self._eq = (self._k.copy(), self.model.equilibrium(self._k))  # train and test: one
        return self.model.evaluate(self._eq[1], idx)

    def k(self) -> np.ndarray:
        return self._k.copy()

    def opt_state(self) -> dict[str, Any]:
        return self.opt.state()

    def restore(self, k: np.ndarray, opt: Mapping[str, Any] | None) -> None:
        if opt is None:
            raise ValueError("an in-silico checkpoint needs the optimiser state")
        self._k = np.array(k, dtype=float)
        self.opt.load(dict(opt))


@dataclass(frozen=True)
class Options(protocol.Options):
    pass  # all in the config (TrainConfig): epochs, batch, lr, optimiser, seed


def plan(net: Network, task: Task, config: TrainConfig, opts: Options) -> Twin:
    return Twin(net, task, config, None)


METHOD = Method(METHOD_NAME, "in silico: the digital twin's exact gradient, no boards", Options,
                on_rig=False, plan=plan, holds="host")  # fmt: skip


def train(
    net: Network,
    task: Task,
    config: TrainConfig,
    callbacks: Sequence[Callback] = (),
    k0: np.ndarray | None = None,
    resume: Resume | None = None,
    checkpoint_every: int | None = None,
) -> TrainResult:
    """Train ``task`` on ``net`` from k0 (default: the file's k_init). Deterministic per seed.

    ``resume`` continues a run from a checkpoint (stiffness and optimiser state after
    ``resume.step`` steps): the same batches follow as in an uninterrupted run. The loop is
    the one every method runs (trainers/loop.py); ``METHOD.train`` is the same without k0.
    """
    from insitu.trainers import loop

    ctx = protocol.Context(None, None, resume=resume, checkpoint_every=checkpoint_every)
    return loop.run(METHOD_NAME, net, task, config, Twin(net, task, config, k0), callbacks, ctx)
