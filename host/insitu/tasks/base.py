"""What a task is: samples as input forces, targets, a loss of the outputs and its gradient.

A task never sees stiffnesses. It maps the output displacements ``U`` (samples x outputs, m) of
one io set of the network file to a per-sample loss and to dL/du_out. dL/du_out is the only
gradient the host computes in the in-situ modes (DESIGN.md §4), so it lives here, once, and
every trainer (in silico, in situ, coupled learning ...) uses the same function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# Losses of displacements are reported in mm^2 (MSE): in m^2 they read ~1e-8 and nobody can
# compare two runs by eye. The unit only scales the loss; Adam is invariant to it.
MM = 1e-3
# |u| below this (m) is treated as this, so ln|u| and 1/u stay finite at a node that does not
# move; a femtometre is far below any sensor.
_TINY = 1e-15


class TaskError(ValueError):
    """A task cannot be built (bad file, bad callable, io set mismatch); one line."""


class Loss(Protocol):
    """Loss of a batch of output displacements U (n, n_out) against targets (n, ...)."""

    name: str

    def value_and_grad(self, U: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample loss (n,) and d(loss_s)/dU_s (n, n_out)."""
        ...

    def accuracy(self, U: np.ndarray, targets: np.ndarray) -> float | None:
        """Fraction of samples right, or None where accuracy means nothing (regression)."""
        ...


@dataclass(frozen=True)
class MSE:
    """Mean over outputs of ((u - target) / unit)^2; unit = 1 mm, so the loss is in mm^2."""

    unit: float = MM
    name: str = "mse"

    def value_and_grad(self, U: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = (U - targets) / self.unit
        n_out = U.shape[1]
        return np.mean(r * r, axis=1), 2.0 * r / (self.unit * n_out)

    def accuracy(self, U: np.ndarray, targets: np.ndarray) -> float | None:
        return None


@dataclass(frozen=True)
class AbsCrossEntropy:
    """Cross-entropy of p_j = |u_j|^g / sum_i |u_i|^g with integer class targets (Li & Mao).

    ``sharpness`` g = 1 is the paper's p_j = |u_j| / sum |u|. p is invariant to the scale of u,
    so unlike a softmax over free logits the loss has no way to grow confident; g > 1 gives it
    that freedom (a temperature on ln|u|). The prediction is argmax |u_j| for every g.
    """

    sharpness: float = 1.0
    name: str = "abs-cross-entropy"

    def value_and_grad(self, U: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(targets, dtype=int)
        rows = np.arange(U.shape[0])
        a = np.maximum(np.abs(U), _TINY)
        z = self.sharpness * np.log(a)
        z_max = z.max(axis=1, keepdims=True)
        q = np.exp(z - z_max)  # softmax in log space: stable for any g
        s = q.sum(axis=1, keepdims=True)
        q /= s
        loss = (np.log(s[:, 0]) + z_max[:, 0]) - z[rows, y]
        q[rows, y] -= 1.0
        u = np.where(U >= 0, a, -a)  # d ln|u| / du = 1/u, with the floor applied
        return loss, self.sharpness * q / u

    def accuracy(self, U: np.ndarray, targets: np.ndarray) -> float | None:
        return float(np.mean(np.argmax(np.abs(U), axis=1) == np.asarray(targets, dtype=int)))


@dataclass(frozen=True)
class Task:
    """A learning task on one io set of a network.

    ``inputs`` (n, n_in) are forces in N along the io set's input DOFs (signed: -y is a hanging
    weight); ``targets`` are (n, n_out) displacements in m or (n,) class indices (class j is
    output j of the io set); ``train``/``test`` index the samples. ``defaults`` are the
    hyper-parameters this task was tuned with (lr in N/m per step, batch, epochs).
    """

    name: str
    io: str
    inputs: np.ndarray
    targets: np.ndarray
    train: np.ndarray
    test: np.ndarray
    loss: Loss
    classes: tuple[str, ...] = ()
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return int(self.inputs.shape[0])

    def value_and_grad(self, U: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample loss and dL/du_out for the samples ``idx`` given their outputs U."""
        return self.loss.value_and_grad(np.asarray(U, dtype=float), self.targets[idx])

    def accuracy(self, U: np.ndarray, idx: np.ndarray) -> float | None:
        return self.loss.accuracy(np.asarray(U, dtype=float), self.targets[idx])

    def loss_grad(self, u_out: np.ndarray, target: Any) -> tuple[float, np.ndarray]:
        """One sample: (loss, dL/du_out) — the per-sample form an in-situ trainer calls."""
        loss, g = self.loss.value_and_grad(
            np.asarray(u_out, dtype=float)[None, :], np.asarray([target])
        )
        return float(loss[0]), g[0]

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "io": self.io,
            "loss": self.loss.name,
            "samples": self.n_samples,
            "train": int(self.train.size),
            "test": int(self.test.size),
            "classes": list(self.classes),
        }


def split(
    n: int, seed: int, train_fraction: float = 0.7, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test split; stratified per class when ``labels`` is given.

    Stratified: round(fraction * class size) of each class goes to train, so every split of
    Iris is 35/15 per species and the test score does not swing with the class mix.
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        perm = rng.permutation(n)
        n_train = int(round(train_fraction * n))
        return np.sort(perm[:n_train]), np.sort(perm[n_train:])
    labels = np.asarray(labels)
    train, test = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_train = int(round(train_fraction * members.size))
        train.append(members[:n_train])
        test.append(members[n_train:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
