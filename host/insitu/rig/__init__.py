"""The session layer: a network's boards as one instrument (docs/host.md)."""

from insitu.rig.lab import emulated_rig
from insitu.rig.session import (
    BoardInfo,
    Counters,
    Measurement,
    Rig,
    RigError,
    UpdateSummary,
    expected_configs,
)

Session = Rig

__all__ = [
    "BoardInfo",
    "Counters",
    "Measurement",
    "Rig",
    "RigError",
    "Session",
    "UpdateSummary",
    "emulated_rig",
    "expected_configs",
]
