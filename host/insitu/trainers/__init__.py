"""Training methods, one module each (docs/training.md).

``METHODS`` maps the ``--method`` name to the module; a method module exposes
``train(net, task, config, callbacks=()) -> TrainResult`` (insitu.trainers.common). Modules are
imported lazily so choosing a method does not import the others' dependencies.
"""

from __future__ import annotations

import importlib
from types import ModuleType

METHODS: dict[str, str] = {
    "insilico": "insitu.trainers.insilico",
    "coupled": "insitu.trainers.coupled",
    "spsa": "insitu.trainers.spsa",
    "fd": "insitu.trainers.fd",
    "pat": "insitu.trainers.pat",
    "insilico-write": "insitu.trainers.insilico_write",
    "insitu": "insitu.trainers.insitu",
}


def method_module(name: str) -> ModuleType:
    return importlib.import_module(METHODS[name])
