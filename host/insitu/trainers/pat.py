"""Physics-aware training (Wright et al. 2022): physical forward, digital-twin backward.

Per mini-batch (B loadings):

1. forward phases of the batch on the rig → measured outputs U; the host computes the loss and
   ∂L/∂u from *those* outputs;
2. backward through the digital twin — the physics core (``insilico.Model``) at the stiffness
   the host believes the boards hold, i.e. what it last commanded: the twin solves the forward
   problem itself (for its elongations) and the adjoint problem with f_adj = −∂L/∂u(measured),
   and the per-bond gradient is e_twin·e_adj,twin;
3. the host's optimiser (identical to the nodes') takes the step, and the new stiffnesses go to
   the boards with ``set`` (one message per board).

This is the one non-local method of the family (DESIGN.md §4): the host computes every per-bond
gradient and commands every stiffness, and it needs a model of the network. Its error is the
twin's: where the real elements, sensors or geometry differ from the twin, the backward pass
differs from the true gradient; the measured forward keeps the loss itself honest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from insitu.network.schema import Network, load_network
from insitu.rig.session import Rig
from insitu.tasks.base import Task
from insitu.trainers import protocol, rigloop
from insitu.trainers.common import TrainConfig
from insitu.trainers.insilico import Model
from insitu.trainers.insitu import Phases
from insitu.trainers.protocol import Method, option


def twin_gradient(
    model: Model, k: np.ndarray, idx: np.ndarray, U_measured: np.ndarray
) -> np.ndarray:
    """Batch-mean dL/dk: ∂L/∂u from the measured outputs, ∂u/∂k from the twin at k."""
    eq = model.equilibrium(k)
    u = model.forward(eq, idx)  # the twin's own states: its elongations carry the backward pass
    _, dl_du = model.task.value_and_grad(U_measured, idx)
    dL_du = np.zeros_like(u)
    dL_du[model.out_dofs, :] = dl_du.T
    per_sample, _ = eq.gradient(u, dL_du)
    return per_sample.mean(axis=1)


def loadings_per_update(batch: int) -> int:
    return batch


@dataclass(frozen=True)
class Options(protocol.Options):
    twin: Network | None = option(None, "the network file the host models (default: the "
                                  "trained network; another file studies model mismatch)",
                                  kind=str, metavar="FILE", parse=load_network)  # fmt: skip


def plan(net: Network, task: Task, config: TrainConfig, opts: Options) -> rigloop.HostSteps:
    """Forward phases on the rig, backward through the twin (``opts.twin``, default ``net``
    itself), the host's optimiser, ``set`` on every board."""
    model = Model(opts.twin or net, task)

    def estimate(rig: Rig, idx: np.ndarray, k: np.ndarray, ph: Phases) -> tuple[float, np.ndarray]:
        loss, U = rigloop.batch_outputs(rig, task, idx, ph)
        return loss, twin_gradient(model, k, idx, U)

    return rigloop.HostSteps(net, config, estimate)


METHOD = Method("pat", "physics-aware training: physical forward, digital-twin backward",
                Options, plan=plan, holds="host")  # fmt: skip
train = METHOD.train
