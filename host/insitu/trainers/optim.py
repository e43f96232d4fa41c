"""Vectorised SGD / momentum / Adam over all bonds, with projection onto [k_min, k_max].

The same update as the node firmware's per-bond optimiser (insitu_node.learning.optim: same
defaults, bias-corrected Adam, eps added to sqrt(v_hat), clip after every step), written over
numpy arrays so the in-silico digital twin and the hardware take identical steps. The sign of
the step comes from the one convention module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from insitu_node.learning.convention import descent

OPTIMISERS = ("sgd", "momentum", "adam")


@dataclass
class StepReport:
    max_dk: float  # largest |change| of any bond this step, N/m
    at_bound: int  # bonds the projection held at a bound


class Optimiser:
    def __init__(
        self,
        n: int,
        name: str = "adam",
        lr: float = 1.0,
        mu: float = 0.9,
        b1: float = 0.9,
        b2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        if name not in OPTIMISERS:
            raise ValueError(f"optimiser must be one of {', '.join(OPTIMISERS)}, not {name!r}")
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        self.name, self.lr, self.mu, self.b1, self.b2, self.eps = name, lr, mu, b1, b2, eps
        self.m = np.zeros(n)
        self.v = np.zeros(n)
        self.t = 0

    def state(self) -> dict:
        """Name, step count and moments (a copy), as a checkpoint stores them."""
        return {"name": self.name, "t": self.t, "m": self.m.tolist(), "v": self.v.tolist()}

    def load(self, state: dict) -> None:
        """Continue from ``state()`` of an optimiser of the same name and size."""
        if state.get("name", self.name) != self.name:
            raise ValueError(f"checkpoint is for optimiser {state['name']!r}, not {self.name!r}")
        m, v = np.asarray(state["m"], dtype=float), np.asarray(state["v"], dtype=float)
        if m.shape != self.m.shape or v.shape != self.v.shape:
            raise ValueError(f"checkpoint has {m.size} moments, optimiser {self.m.size}")
        self.m, self.v, self.t = m.copy(), v.copy(), int(state["t"])

    def direction(self, g: np.ndarray) -> np.ndarray:
        """The step direction (before the learning rate) for gradient g; advances the state."""
        if self.name == "sgd":
            return g
        if self.name == "momentum":
            self.m = self.mu * self.m + g
            return self.m
        self.t += 1
        self.m = self.b1 * self.m + (1.0 - self.b1) * g
        self.v = self.b2 * self.v + (1.0 - self.b2) * g * g
        m_hat = self.m / (1.0 - self.b1**self.t)
        v_hat = self.v / (1.0 - self.b2**self.t)
        return m_hat / (np.sqrt(v_hat) + self.eps)

    def step(
        self, k: np.ndarray, g: np.ndarray, k_min: np.ndarray, k_max: np.ndarray
    ) -> tuple[np.ndarray, StepReport]:
        """New stiffness (a new array) after one step on gradient g, projected onto the box."""
        want = descent(k, self.direction(g), self.lr)
        new = np.clip(want, k_min, k_max)
        return new, StepReport(float(np.max(np.abs(new - k))), int(np.sum(new != want)))
