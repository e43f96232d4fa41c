"""What every training method shares: its configuration, its record, and the callback seam.

A method module (insitu.trainers.<method>) exposes ``train(net, task, config, callbacks=(),
...)`` returning a ``TrainResult`` (the method protocol: insitu.trainers.protocol). Trainers
never print; progress bars, run stores and plots hook in through ``Callback.on_step`` /
``on_epoch`` (and ``on_start`` / ``on_end``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    batch: int = 16
    lr: float = 1.0  # N/m per step (Adam: roughly the largest change of a bond per step)
    seed: int = 0
    optimiser: str = "adam"
    mu: float = 0.9  # momentum
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be > 0, got {self.lr}")


@dataclass(frozen=True)
class StepInfo:
    """One optimiser step (one mini-batch)."""

    epoch: int  # 1-based
    step: int  # 1-based, counted over the whole run
    batch: np.ndarray  # sample indices of the batch
    loss: float  # mean loss of the batch at the stiffness *before* the step
    grad: np.ndarray  # dL/dk per bond of the batch mean loss (loss units per N/m)
    k: np.ndarray  # stiffness after the step (a copy)
    max_dk: float
    at_bound: int
    # the host optimiser's state after the step ({"name", "t", "m", "v"}), for checkpoints;
    # None where the optimiser state lives on the boards (in situ)
    opt: dict[str, Any] | None = None


@dataclass(frozen=True)
class EpochRecord:
    """Scores after an epoch (epoch 0 = the initial stiffness), on the whole train/test sets."""

    epoch: int
    train_loss: float
    test_loss: float
    train_accuracy: float | None
    test_accuracy: float | None
    k: np.ndarray  # stiffness at the end of the epoch (a copy)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("k")
        return d


@dataclass(frozen=True)
class Resume:
    """Where a resumed run continues: after ``step`` steps, at stiffness ``k``.

    ``opt`` is the host optimiser's state (in silico); None when the optimiser state is on the
    boards (restored from their flash). ``history`` holds the epoch records made before the
    checkpoint (epoch 0 first). Trainers replay the batch order of the seed up to ``step``, so
    the batches after the checkpoint are those an uninterrupted run would have drawn.
    """

    step: int
    k: np.ndarray
    opt: dict[str, Any] | None
    history: tuple[EpochRecord, ...]


@dataclass(frozen=True)
class Snapshot:
    """A checkpoint the loop took after ``step`` steps (trainers/loop.py): the stiffness and
    optimiser state to continue from. ``on_boards``: every board is then told to save this
    state to its flash under the label ``step`` — after the callbacks have seen it, so a
    run store's row always comes first (docs/reliability.md). ``realised``: what the
    elements realise for the commanded k (their calibrated maps), where boards report it."""

    step: int
    epoch: int
    k: np.ndarray
    opt: dict[str, Any] | None  # {"name", "t", "m", "v"}, per bond in network order
    on_boards: bool
    realised: np.ndarray | None = None


@dataclass(frozen=True)
class GradientCheck:
    """One batch's gradient measured in situ on the boards against the exact one (the
    emulator's truth) after ``epoch``'s scores."""

    epoch: int
    step: int
    insitu: np.ndarray
    exact: np.ndarray

    @property
    def cosine(self) -> float:
        a, b = self.insitu, self.exact
        n = float(np.linalg.norm(a) * np.linalg.norm(b))
        return float(a @ b / n) if n > 0 else float("nan")


class Callback:
    """Override what you need; every hook is a no-op by default."""

    def on_start(self, net: Any, task: Any, config: TrainConfig, k: np.ndarray) -> None:
        pass

    def on_step(self, info: StepInfo) -> None:
        pass

    def on_epoch(self, record: EpochRecord) -> None:
        pass

    def on_checkpoint(self, snap: Snapshot) -> None:
        pass

    def on_gradient(self, check: GradientCheck) -> None:
        pass

    def on_event(self, step: int, kind: str, detail: dict[str, Any]) -> None:
        """Something a method noticed in step ``step`` (e.g. a failed linearity check)."""

    def on_recover(self, step: int, error: str, rebooted: Sequence[str]) -> None:
        """The run went back to its checkpoint ``step`` in place after ``error``."""

    def on_end(self, result: TrainResult) -> None:
        pass


@dataclass
class TrainResult:
    method: str
    task: str
    config: TrainConfig
    k_init: np.ndarray
    k_final: np.ndarray
    history: list[EpochRecord] = field(default_factory=list)
    steps: int = 0

    @property
    def final(self) -> EpochRecord:
        return self.history[-1]

    def summary(self) -> dict[str, Any]:
        """The headline numbers; final_loss is the mean training loss at the final stiffness."""
        f = self.final
        return {
            "method": self.method,
            "task": self.task,
            "seed": self.config.seed,
            "epochs": self.config.epochs,
            "train_accuracy": f.train_accuracy,
            "test_accuracy": f.test_accuracy,
            "final_loss": f.train_loss,
            "test_loss": f.test_loss,
        }

    def to_dict(self) -> dict[str, Any]:
        d = self.summary()
        d["config"] = asdict(self.config)
        d["steps"] = self.steps
        d["k_init"] = self.k_init.tolist()
        d["k_final"] = self.k_final.tolist()
        d["history"] = [r.to_dict() for r in self.history]
        return d


def listens(callbacks: Sequence[Callback], hook: str) -> bool:
    """Some callback does something on ``hook`` (not Callback's no-op)."""
    base = getattr(Callback, hook)
    return any(getattr(type(cb), hook, base) is not base for cb in callbacks)


def notify(callbacks: Sequence[Callback], hook: str, *args: Any) -> None:
    for cb in callbacks:  # a callback need not subclass Callback: it has the hooks it wants
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)
