"""The emulator: a world of springs, emulated parts and boards (docs/emulator.md)."""

from .clock import RealClock, VirtualClock
from .hardware import NOMINAL, PROFILES, Nominal, Profile, get_profile
from .world import Bus, DeviceError, World, gradient_check

__all__ = [
    "NOMINAL",
    "PROFILES",
    "Bus",
    "DeviceError",
    "Nominal",
    "Profile",
    "RealClock",
    "VirtualClock",
    "World",
    "get_profile",
    "gradient_check",
]
