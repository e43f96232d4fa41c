"""The few things that differ between MicroPython and CPython, in one place.

Every other module imports const/ticks/crc32 from here so the same source runs on a board,
on the unix port and under CPython (host, pytest).
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython: emulate the board's wrapping tick counter
    import time as _time

    _PERIOD = const(1 << 30)  # boards wrap at 2**30 ms; keep the same arithmetic everywhere
    _HALF = const(1 << 29)

    def ticks_ms():
        return int(_time.monotonic() * 1000) & (_PERIOD - 1)

    def ticks_add(t, delta):
        return (t + delta) & (_PERIOD - 1)

    def ticks_diff(a, b):
        return ((a - b + _HALF) & (_PERIOD - 1)) - _HALF


from binascii import crc32 as _crc32


def crc32(data):
    """CRC-32 as an unsigned int (CPython and MicroPython agree on the value)."""
    return _crc32(data) & 0xFFFFFFFF


def is_micropython():
    import sys

    return sys.implementation.name == "micropython"
