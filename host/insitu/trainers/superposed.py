"""Superposed in-situ backprop: the exact batch gradient from port loadings (issue 14).

In the linear regime a sample's forward elongations are e(s) = E x_s and its outputs
u(s) = O x_s, where column i of E and O is the response to a unit force at input port i
alone. With g_s = ∂L_s/∂u (the host's, from the predicted outputs) and M = Σ_s x_s g_sᵀ
(n_in × n_out), the gradient of the batch-mean loss is

    ∂L/∂k_b = (1/S) Σ_s e_b(s) e_adj,b(s) = (1/S) Σ_i E_bi · e_adj,b(row i of M),

e_adj(row i of M) being the adjoint elongation when the outputs carry the adjoint force of
M's row i (``convention.adjoint_force``, the one sign): by linearity, one loading per input
port. Per step, with ``repeats`` × (±1 if ``signed``) groups:

1. port loadings: input port i alone at ±F (5 g) → ``measure forward tag=<group's>+i``: each
   node keeps its bonds' E_bi·F; the output boards report O's column i (n_in loadings per
   group; O is the groups' mean);
2. the host predicts every batch sample's outputs O x_s (no loading), computes g_s and M;
3. per group and port i: the outputs at ±adjoint_force(σ_i·M_i) → ``measure adjoint
   tag=<group's>+i scale=n_in/(S·F·σ_i)``: each node adds E_bi·e_adj to its accumulator;

then ``update rule=adjoint batch=<groups·n_in>``: each node's mean over its products is the
batch gradient (averaged over the groups) and its own Adam steps as in the per-sample rule.
Local: a node uses its own two elongations and one scale per product; host traffic does not
depend on the number of bonds, and a step costs 2·n_in loadings per group whatever the batch
(Iris on li-mao-2024, full batch: 8 instead of 2·105). Signed pairs cancel the products'
cross terms with strain offsets (the forward sign and the adjoint sign flip together).

Scores come from port loadings too (O x_s for every sample: n_in loadings per group instead
of one per sample). The rig checks superposition itself every ``check_every`` steps: all input
ports at F/2 together against the sum of their single-port responses; a relative difference
above ``linearity_tol`` twice in a row (a second check loading confirms the first: output
noise alone rarely exceeds it, a nonlinear rig always does) makes that step fall back to the
per-sample rule (insitu.py, 2·S loadings); every check is logged (``linearity`` event).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from insitu.network.schema import Network
from insitu.tasks.base import Task
from insitu.trainers import protocol
from insitu.trainers.common import TrainConfig
from insitu.trainers.insitu import ADJOINT_PEAK_N, floored, per_sample_step
from insitu.trainers.protocol import Method, Plan, Step, hyper, option
from insitu_node.learning.convention import adjoint_force

log = logging.getLogger(__name__)

PORT_N = ADJOINT_PEAK_N  # a port loading when the task's inputs are all 0 (5 g)
TAGS = 16  # forward states a node keeps (its config's `tags`, default 16); the linearity
# check's loading takes one (tag 0)


@dataclass(frozen=True)
class Options(protocol.Options):
    repeats: int = option(1, "port loadings per port and step, each group a whole gradient "
                          "estimate; the nodes average them", flag="--port-repeats", ge=1,
                          le=32)  # fmt: skip
    signed: bool = option(False, "each group also at -F (forward and adjoint): strain "
                          "offsets cancel from the products; twice the loadings",
                          flag="--signed-pairs")  # fmt: skip
    # realistic boards, calibrated: one port loading repeats to 2.2 % (output sensor noise on
    # 40-90 um) and the check reads 1.7-4.9 % on a linear rig; 10 % is well above that
    linearity_tol: float = option(0.1, "superposition check: all ports at once against the "
                                  "sum of single ports, relative; above it a step falls back "
                                  "to the per-sample rule", gt=0.0, le=1.0)  # fmt: skip
    check_every: int = option(1, "check superposition every N steps (0: never; 1 loading "
                              "each)", flag="--linearity-every", ge=0)  # fmt: skip


def loadings_per_update(n_in: int, repeats: int = 1, signed: bool = False,
                        check: bool = True) -> int:  # fmt: skip
    """A step's loadings on a rig in the linear regime."""
    return 2 * n_in * repeats * (2 if signed else 1) + (1 if check else 0)


def check(net: Network, task: Task, config: TrainConfig, opts: Options) -> None:
    """ValueError when the nodes cannot keep every port loading of a step (``Method.check``)."""
    n_in = len(net.io_set(task.io).inputs)
    signs = 2 if opts.signed else 1
    tags = opts.repeats * signs * n_in + (1 if opts.check_every else 0)
    if tags > TAGS:
        raise ValueError(f"superposed: {opts.repeats} repeats x {signs} signs x {n_in} input "
                         f"ports (+1 for the linearity check) = {tags} forward states; a node "
                         f"keeps {TAGS} (config `tags`)")  # fmt: skip


class Superposed(Plan):
    """The plan above; its state (k, the optimiser) lives on the boards."""

    def __init__(self, net: Network, task: Task, config: TrainConfig, opts: Options) -> None:
        self.net, self.task, self.config, self.opts = net, task, config, opts
        self.io = net.io_set(task.io)
        self.n_in = len(self.io.inputs)
        # each port is loaded as hard as the task's largest input force (Iris: 5 g), so the
        # port loadings and the check see the regime the samples do
        self.F = float(np.max(np.abs(task.inputs))) if task.inputs.size else 0.0
        self.F = self.F or PORT_N
        self.signs = (1.0, -1.0) if opts.signed else (1.0,)
        check(net, task, config, opts)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._scored: np.ndarray | None = None  # O of the last score (the stiffness since)

    # ------------------------------------------------------------------ port loadings

    def ports(self, sign: float, tag0: int | None) -> np.ndarray:
        """Each input port alone at sign·F: O per newton (n_out × n_in). ``tag0``: the nodes
        keep port i's elongations under tag0 + i (None: under tag 0, as a score does)."""
        rig, ph = self.rig, self.phases
        assert rig is not None and ph is not None
        Ou = np.empty((len(self.io.outputs), self.n_in))
        for i, port in enumerate(self.io.inputs):
            rig.apply_forces({port: sign * self.F})
            tag = 0 if tag0 is None else tag0 + i
            m = rig.measure("forward", tag=tag, **ph.how())
            Ou[:, i] = m.outputs(self.io.outputs) / (sign * self.F)
        return Ou

    def predict(self, Ou: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Outputs of samples idx (S × n_out) by superposition, floored as measured ones."""
        assert self.phases is not None
        return floored(self.task.inputs[idx] @ Ou.T, self.phases.u_floor)

    def linearity(self, Ou: np.ndarray) -> float:
        """All input ports at F/2 together against (F/2)·Σ_i O_·i: the relative difference
        (F/2: a load as large as a sample's, whose features are rarely all at their peak)."""
        rig, ph = self.rig, self.phases
        assert rig is not None and ph is not None
        half = 0.5 * self.F
        rig.apply_forces({p: half for p in self.io.inputs})
        m = rig.measure("forward", tag=0, **ph.how())
        u = m.outputs(self.io.outputs)
        want = half * Ou.sum(axis=1)
        scale = float(np.linalg.norm(want))
        return float(np.linalg.norm(u - want) / scale) if scale > 0 else 0.0

    # ------------------------------------------------------------------ the plan

    def step(self, idx: np.ndarray, n: int) -> Step:
        rig, ph, cfg, task = self.rig, self.phases, self.config, self.task
        assert rig is not None and ph is not None
        S = len(idx)
        self._scored = None  # the stiffness changes
        groups = [s for _ in range(self.opts.repeats) for s in self.signs]
        # every group's port loadings first: O is their mean (a signed pair's offsets cancel),
        # and the nodes keep each group's elongations under tags of its own
        Os = [self.ports(sign, 1 + g * self.n_in) for g, sign in enumerate(groups)]
        Ou = np.mean(Os, axis=0)
        if self.opts.check_every and n % self.opts.check_every == 0:
            rels = [self.linearity(Ou)]
            if rels[0] > self.opts.linearity_tol:  # noise, or the rig? one more loading says
                rels.append(self.linearity(Ou))
            fallback = min(rels) > self.opts.linearity_tol
            self.events.append(("linearity", {"rel": rels[-1], "checks": rels,
                                              "fallback": bool(fallback)}))  # fmt: skip
            if fallback:
                log.warning("linearity check %.3g > tolerance %.3g (twice): this step by the "
                            "per-sample rule", min(rels), self.opts.linearity_tol)  # fmt: skip
                return self._per_sample(idx)
        U = self.predict(Ou, idx)
        loss, G = task.value_and_grad(U, idx)
        M = task.inputs[idx].T @ G  # n_in × n_out: Σ_s x_s g_sᵀ
        for g, sign in enumerate(groups):
            for i in range(self.n_in):
                peak = float(np.max(np.abs(M[i]))) if M.shape[1] else 0.0
                if peak == 0.0:  # this port's samples ask for nothing: adds 0
                    rig.forces_off()
                    sigma = 1.0
                else:
                    sigma = ph.adjoint_peak / peak
                    f = sign * adjoint_force(sigma * M[i])
                    rig.apply_forces({p: float(v) for p, v in zip(self.io.outputs, f, strict=True)})
                scale = self.n_in / (S * self.F * sigma)
                rig.measure("adjoint", tag=1 + g * self.n_in + i, scale=scale, **ph.how())
        rep = rig.update(rule="adjoint", lr=cfg.lr, opt=cfg.optimiser,
                         batch=len(groups) * self.n_in, **hyper(cfg))  # fmt: skip
        return Step(float(np.mean(loss)), np.full(self.net.n_bonds, np.nan), rep.max_dk,
                    rep.frozen)  # fmt: skip

    def _per_sample(self, idx: np.ndarray) -> Step:
        """The fallback: this step by the per-sample rule (insitu.py)."""
        assert self.rig is not None and self.phases is not None
        return per_sample_step(self.rig, self.phases, self.task, self.config, idx)

    def score(self, idx: np.ndarray) -> tuple[float, float | None]:
        """Every sample's outputs from the port loadings (n_in per group, not one per
        sample): measured for the training set, kept for the test set that follows."""
        if idx is self.task.train or self._scored is None:
            Os = [self.ports(sign, None) for _ in range(self.opts.repeats) for sign in self.signs]
            self._scored = np.mean(Os, axis=0)
        U = self.predict(self._scored, idx)
        loss, _ = self.task.value_and_grad(U, idx)
        return float(np.mean(loss)), self.task.accuracy(U, idx)

    def drain_events(self) -> list[tuple[str, dict[str, Any]]]:
        out, self.events = self.events, []
        return out


def plan(net: Network, task: Task, config: TrainConfig, opts: Options) -> Superposed:
    return Superposed(net, task, config, opts)


METHOD = Method("superposed", "superposed in-situ backprop: the exact batch gradient from "
                "2 loadings per input port", Options, profile="ideal", plan=plan,
                check=check)  # fmt: skip
train = METHOD.train
