"""Clocks shared by the emulated world and the emulated boards (docs/emulator.md).

Both clocks have one interface: ``now_us()``, ``now_ms()``, ``now()`` (seconds, float),
``sleep_ms()``, ``sleep_us()`` and MicroPython-style ``ticks_ms()`` / ``ticks_add()`` /
``ticks_diff()`` that wrap at 2**30 like a board's, so firmware run against the emulator
exercises its wrap-safe arithmetic. ``VirtualClock`` advances only when someone sleeps (or calls
``advance``): deterministic, and a 5 s settle costs nothing. ``RealClock`` follows the host's
monotonic clock, for the interactive virtual lab.
"""

from __future__ import annotations

import threading
import time

TICKS_PERIOD = 1 << 30  # MicroPython boards wrap ticks_ms at 2**30
_TICKS_HALF = TICKS_PERIOD // 2


def ticks_add(ticks: int, delta: int) -> int:
    """(ticks + delta) modulo the board tick period."""
    return (ticks + delta) % TICKS_PERIOD


def ticks_diff(a: int, b: int) -> int:
    """Signed a - b for wrapped ticks, valid while |a - b| < 2**29 (as on a board)."""
    return (a - b + _TICKS_HALF) % TICKS_PERIOD - _TICKS_HALF


class _ClockBase:
    """Derived helpers; subclasses provide now_us and sleep_us."""

    def now_us(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def sleep_us(self, us: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def now_ms(self) -> int:
        return self.now_us() // 1000

    def now(self) -> float:
        """Seconds since the clock started (the world clock's time axis)."""
        return self.now_us() * 1e-6

    def sleep_ms(self, ms: float) -> None:
        self.sleep_us(ms * 1000.0)

    def ticks_ms(self) -> int:
        return self.now_ms() % TICKS_PERIOD

    def ticks_us(self) -> int:
        return self.now_us() % TICKS_PERIOD

    ticks_add = staticmethod(ticks_add)
    ticks_diff = staticmethod(ticks_diff)


class VirtualClock(_ClockBase):
    """Deterministic simulated time in integer microseconds; sleeping advances it instantly.

    Thread-safe, so an emulated board in another thread may share it; with several sleepers
    the clock simply adds their sleeps (a scheduler that runs many nodes in virtual time
    should advance the clock itself, to the earliest wake-up, with ``advance_to``).
    """

    def __init__(self, start_ms: int = 0) -> None:
        if start_ms < 0:
            raise ValueError(f"start_ms must be >= 0, got {start_ms}")
        self._us = int(start_ms) * 1000
        self._lock = threading.Lock()

    def now_us(self) -> int:
        return self._us

    def sleep_us(self, us: float) -> None:
        self.advance_us(us)

    def advance_us(self, us: float) -> None:
        if us < 0:
            raise ValueError(f"cannot sleep a negative time ({us} us)")
        with self._lock:
            self._us += round(us)

    def advance(self, seconds: float) -> None:
        self.advance_us(seconds * 1e6)

    def advance_to(self, t_us: int) -> None:
        """Jump to an absolute time (never backwards)."""
        with self._lock:
            if t_us > self._us:
                self._us = int(t_us)


class RealClock(_ClockBase):
    """Wall-clock time since construction (time.monotonic_ns); sleeping really sleeps."""

    def __init__(self) -> None:
        self._t0 = time.monotonic_ns()

    def now_us(self) -> int:
        return (time.monotonic_ns() - self._t0) // 1000

    def sleep_us(self, us: float) -> None:
        if us < 0:
            raise ValueError(f"cannot sleep a negative time ({us} us)")
        time.sleep(us * 1e-6)


Clock = VirtualClock | RealClock

__all__ = ["Clock", "RealClock", "TICKS_PERIOD", "VirtualClock", "ticks_add", "ticks_diff"]
