"""The session layer: a network's boards as one instrument (docs/host.md)."""

from insitu.rig.lab import board_configs, close_rig, emulated_rig, expected_configs, open_rig
from insitu.rig.session import (
    BoardInfo,
    Counters,
    Measurement,
    Rig,
    RigError,
    UpdateSummary,
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
    "board_configs",
    "close_rig",
    "emulated_rig",
    "expected_configs",
    "open_rig",
]
