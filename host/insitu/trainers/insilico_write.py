"""In-silico training, then write the stiffnesses to the boards and score them physically.

1. ``insilico.train`` on the digital twin (no loading at all);
2. ``set`` the trained stiffnesses on every board (one message per board);
3. forward phases on the whole train and test sets: the physical scores.

The cost in loadings is the scoring alone; what it shows is the sim-to-real gap — on ideal
boards the physical scores equal the twin's, on realistic ones they differ by whatever the
twin does not know (element calibration, sensor gain, geometry). The history holds two
physical records: epoch 0 (the boards before the write) and the last epoch (after it); the
twin's own per-epoch scores are not taken (they would cost nothing but time; ``insilico``
gives them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from insitu.network.schema import Network
from insitu.tasks.base import Task
from insitu.trainers import insilico, protocol
from insitu.trainers.common import TrainConfig
from insitu.trainers.protocol import Method

METHOD_NAME = "insilico-write"


@dataclass(frozen=True)
class Options(protocol.Options):
    pass  # insilico.train's (the config's); none of its own


class TwinThenWrite(insilico.Twin):
    """The twin trains from the boards' stiffness (no loading); before the last score the
    host writes its stiffness to every board (``set``); scores are physical, at epoch 0 and
    at the end only."""

    scores_each_epoch = False

    def score(self, idx: np.ndarray) -> None:
        return None  # on the rig: forward phases

    def finish(self) -> None:
        assert self.rig is not None
        self.rig.set_stiffness(self._k)


def plan(net: Network, task: Task, config: TrainConfig, opts: Options) -> TwinThenWrite:
    return TwinThenWrite(net, task, config, None)


METHOD = Method(METHOD_NAME, "in silico, then write the stiffnesses to the boards and score them",
                Options, plan=plan, holds="host")  # fmt: skip
train = METHOD.train
