"""SPSA kept local: a zeroth-order baseline whose update still happens on the nodes.

Per mini-batch (2·B loadings, whatever the number of bonds):

1. the host draws a step seed S and broadcasts ``perturb seed=S c=c sign=+1``: every node
   draws its own Δ_b = ±1 per bond from (S, i, j) (``insitu_node.learning.spsa.sign``) and
   sets k_b + c·Δ_b (clipped to its bounds);
2. forward phases of the batch → the host computes L+ (batch-mean loss from the outputs);
3. ``perturb seed=S c=c sign=-1`` → forward phases → L−;
4. ``update rule=spsa lp=L+ lm=L− lr=..``: every node steps its *base* stiffness on
   (L+ − L−)/(2c)·Δ_b with its own optimiser and goes back to base + step (the node refuses
   ``rule=spsa`` without an active perturbation, so no ``perturb sign=0`` comes before it;
   ``sign=0`` is how a caller abandons a perturbation without updating).

Host traffic per step: three broadcasts plus the forward phases; the host sends two numbers,
never a per-bond value. It can reproduce every Δ_b from S, so it knows the estimate it caused
(reported in ``StepInfo.grad``). The estimate is unbiased to O(c²) but its variance grows with
the number of bonds: SPSA needs many more steps than a gradient method (docs/methods.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from insitu.network.schema import Network
from insitu.rig.session import Rig
from insitu.tasks.base import Task
from insitu.trainers import protocol, rigloop
from insitu.trainers.common import TrainConfig
from insitu.trainers.insitu import Phases
from insitu.trainers.protocol import BoardSteps, Method, Plan, Step, hyper, option
from insitu_node.learning import spsa as spsa_rule

C = 1.0  # perturbation, N/m (0.7 % of the li-mao range's middle; well above element resolution)
SEED_MAX = 999_999_999  # the protocol's bound on `perturb seed`


def directions(net: Network, seed: int) -> np.ndarray:
    """Δ_b = ±1 per bond, as every node draws it from the step seed."""
    ids = net.node_ids
    return np.array(
        [spsa_rule.sign(seed, int(ids[i]), int(ids[j])) for i, j in net.bonds], dtype=float
    )


def loadings_per_update(batch: int) -> int:
    return 2 * batch


@dataclass(frozen=True)
class Options(protocol.Options):
    c: float = option(C, "the perturbation c, N/m (each bond moves ±c)", flag="--spsa-c",
                      gt=0.0, le=1e4)  # fmt: skip


class _Seeds:
    """The step seeds, one per step from the run's seed: step n's seed whatever step the run
    starts at (a resume, a rollback), as an uninterrupted run draws it."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._restart()

    def _restart(self) -> None:
        self.rng, self.n, self.last = np.random.default_rng([self.seed, 0x5B5A]), 0, 0

    def at(self, n: int) -> int:
        if n <= self.n:
            self._restart()
        while self.n < n:
            self.last = int(self.rng.integers(0, SEED_MAX + 1))
            self.n += 1
        return self.last


def plan(net: Network, task: Task, config: TrainConfig, opts: Options) -> Plan:
    """``perturb`` ±c, forward phases of the batch each way, ``update rule=spsa`` on the nodes
    (``config.lr`` and ``config.optimiser`` are the nodes'; Adam: each bond moves ~lr per step
    in the direction of its ±1 estimate)."""
    c = opts.c
    seeds = _Seeds(config.seed)

    def step(rig: Rig, ph: Phases, idx: np.ndarray, n: int) -> Step:
        seed = seeds.at(n)
        rig.broadcast("perturb", {"seed": seed, "c": c, "sign": 1})
        lp, _ = rigloop.batch_outputs(rig, task, idx, ph)
        rig.broadcast("perturb", {"seed": seed, "c": c, "sign": -1})
        lm, _ = rigloop.batch_outputs(rig, task, idx, ph)
        rep = rig.update(
            rule="spsa", lr=config.lr, opt=config.optimiser, lp=lp, lm=lm, **hyper(config)
        )
        g = spsa_rule.gradient(lp, lm, c, directions(rig.network, seed))
        return Step(0.5 * (lp + lm), g, rep.max_dk, rep.frozen)

    return BoardSteps(step)


METHOD = Method("spsa", "SPSA kept local: a seed and two losses per update", Options,
                plan=plan)  # fmt: skip
train = METHOD.train
