"""Tasks: samples, targets, loss of the outputs and dL/du_out (docs/training.md).

``make_task(name, net, seed)`` builds a reference task; ``from_csv`` and ``from_callable`` build
user tasks. Every task is a ``Task`` whose loss gives per-sample values and dL/du_out.
"""

from __future__ import annotations

from collections.abc import Callable

from insitu.network.schema import Network
from insitu.tasks.base import MSE, AbsCrossEntropy, Loss, Task, TaskError, split
from insitu.tasks.reference import behaviour, behaviour_ratio, iris, load_iris, regression
from insitu.tasks.user import from_callable, from_csv

TASKS: dict[str, Callable[..., Task]] = {
    "behaviour": behaviour,
    "behaviour-ratio": behaviour_ratio,
    "regression": regression,
    "iris": iris,
}


def make_task(name: str, net: Network, seed: int = 0, **options) -> Task:
    try:
        builder = TASKS[name]
    except KeyError:
        raise TaskError(f"unknown task {name!r} (known: {', '.join(TASKS)})")
    return builder(net, seed, **options)


__all__ = [
    "MSE",
    "TASKS",
    "AbsCrossEntropy",
    "Loss",
    "Task",
    "TaskError",
    "behaviour",
    "behaviour_ratio",
    "from_callable",
    "from_csv",
    "iris",
    "load_iris",
    "make_task",
    "regression",
    "split",
]
