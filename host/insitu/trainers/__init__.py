"""Training methods, one module each (docs/methods.md).

``METHODS`` maps the ``--method`` name to the module; a method module holds its ``Options``
and its ``METHOD`` (a ``protocol.Method``), whose ``train`` is the one entry point
(insitu.trainers.protocol). Modules are imported lazily: ``method(name)`` imports one.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from insitu.trainers.protocol import Method

METHODS: dict[str, str] = {
    "insilico": "insitu.trainers.insilico",
    "coupled": "insitu.trainers.coupled",
    "spsa": "insitu.trainers.spsa",
    "fd": "insitu.trainers.fd",
    "pat": "insitu.trainers.pat",
    "insilico-write": "insitu.trainers.insilico_write",
    "insitu": "insitu.trainers.insitu",
    "superposed": "insitu.trainers.superposed",
}


def method_module(name: str) -> ModuleType:
    return importlib.import_module(METHODS[name])


def method(name: str) -> Method:
    """The method record of ``--method name`` (its options, where it trains, its train)."""
    return method_module(name).METHOD
