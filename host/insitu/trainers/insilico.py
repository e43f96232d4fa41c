"""In-silico training: the digital twin of in-situ backpropagation, and its yardstick.

Per mini-batch: one factorisation of K_ff at the current stiffness; the forward problem of the
whole batch as one multi-RHS solve; dL/du_out from the task; the adjoint problem (force
-dL/du at the outputs, inputs off) of the whole batch as a second multi-RHS solve on the same
factorisation; gradient = mean over samples of e * e_adj (Equilibrium.gradient, which uses the
convention module); one optimiser step projected onto [k_min, k_max]. Linear statics only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from insitu.network.schema import Network
from insitu.physics.linear import DenseEquilibrium, Equilibrium, compatibility
from insitu.tasks.base import Task
from insitu.trainers import protocol
from insitu.trainers.common import (
    Callback,
    EpochRecord,
    Resume,
    StepInfo,
    TrainConfig,
    TrainResult,
    notify,
)
from insitu.trainers.optim import Optimiser
from insitu.trainers.protocol import Method

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


def train(
    net: Network,
    task: Task,
    config: TrainConfig,
    callbacks: Sequence[Callback] = (),
    k0: np.ndarray | None = None,
    resume: Resume | None = None,
) -> TrainResult:
    """Train ``task`` on ``net`` from k0 (default: the file's k_init). Deterministic per seed.

    ``resume`` continues a run from a checkpoint (stiffness and optimiser state after
    ``resume.step`` steps): the same batches follow as in an uninterrupted run.
    """
    model = Model(net, task)
    k = np.clip(np.array(net.k_init if k0 is None else k0, dtype=float), net.k_min, net.k_max)
    opt = Optimiser(
        net.n_bonds, config.optimiser, config.lr, config.mu, config.b1, config.b2, config.eps
    )
    # a stream of its own: the task's split uses default_rng(seed) and must not correlate
    rng = np.random.default_rng([config.seed, 0x1A5])
    result = TrainResult(METHOD_NAME, task.name, config, k.copy(), k.copy())
    done = 0
    if resume is not None:
        result.k_init = resume.history[0].k.copy() if resume.history else k.copy()
        k = np.array(resume.k, dtype=float)
        if resume.opt is None:
            raise ValueError("an in-silico checkpoint needs the optimiser state")
        opt.load(resume.opt)
        result.history = list(resume.history)
        done = resume.step
    notify(callbacks, "on_start", net, task, config, k.copy())

    def record(epoch: int, eq: Solver) -> None:
        tr_loss, tr_acc = model.evaluate(eq, task.train)
        te_loss, te_acc = model.evaluate(eq, task.test)
        rec = EpochRecord(epoch, tr_loss, te_loss, tr_acc, te_acc, k.copy())
        result.history.append(rec)
        notify(callbacks, "on_epoch", rec)

    if not result.history:
        record(0, model.equilibrium(k))
    step = 0
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(task.train)  # drawn for skipped epochs too: same stream
        for start in range(0, order.size, config.batch):
            step += 1
            if step <= done:
                continue
            idx = order[start : start + config.batch]
            loss, g = model.batch_gradient(k, idx)
            k, rep = opt.step(k, g, net.k_min, net.k_max)
            notify(
                callbacks,
                "on_step",
                StepInfo(
                    epoch, step, idx, loss, g, k.copy(), rep.max_dk, rep.at_bound, opt.state()
                ),
            )
        if epoch > result.history[-1].epoch:
            record(epoch, model.equilibrium(k))
    result.k_final = k.copy()
    result.steps = step
    notify(callbacks, "on_end", result)
    return result


@dataclass(frozen=True)
class Options(protocol.Options):
    pass  # all in the config (TrainConfig): epochs, batch, lr, optimiser, seed


def _loop(
    net: Network, task: Task, config: TrainConfig, callbacks: Sequence[Callback],
    ctx: protocol.Context, opts: Options,
) -> TrainResult:  # fmt: skip
    return train(net, task, config, callbacks, resume=ctx.resume)


# insilico.train keeps its own signature (k0: a start other than the file's k_init)
METHOD = Method(METHOD_NAME, "in silico: the digital twin's exact gradient, no boards", Options,
                on_rig=False, resumes=True, loop=_loop)  # fmt: skip
