"""The servo-tuned leaf spring (hardware/docs/node.md, option A): one owner of its law.

A spring-steel leaf clamped at free length L is a cantilever, k_el = E·w·t³ / (4·L³), in
parallel with the bond's sensing flexure k_s: k = k_s + C / L³. The servo moves the clamp
linearly in its pulse, so L is linear in the pulse and k is not. C cancels once L is
normalised to the bond's range: L(k) = (k - k_s)^(-1/3) in units where C = 1, and the clamp
runs from L(k_min) at the first pulse to L(k_max) at the last. Used by the firmware configs'
nominal table (``leaf_table``) and by the emulated servo element (emulator/hardware.py).
"""

from __future__ import annotations

import math


def flexure_share(k_min: float, flexure_k: float) -> float:
    """The flexure stiffness k_s the law uses: the kit's flexure, at most half of k_min (so
    k - k_s > 0 over the whole range even for a soft bond)."""
    return min(flexure_k, 0.5 * k_min)


def _length(k: float, ks: float) -> float:
    return (k - ks) ** (-1.0 / 3.0)


def clamp_fraction(k: float, k_min: float, k_max: float, ks: float) -> float:
    """Where the clamp sits (0 at k_min, 1 at k_max) for stiffness k."""
    lo, hi = _length(k_min, ks), _length(k_max, ks)
    return (lo - _length(k, ks)) / (lo - hi)


def leaf_k(frac: float, k_min: float, k_max: float, ks: float) -> float:
    """Stiffness with the clamp at ``frac`` of its travel (may lie outside 0..1: a clamp that
    is off by its link's error); inf once the free length reaches zero."""
    lo, hi = _length(k_min, ks), _length(k_max, ks)
    length = lo + (hi - lo) * frac
    return ks + length**-3 if length > 0 else math.inf


def leaf_table(
    k_min: float, k_max: float, ks: float, pulse_us: tuple[float, float], points: int
) -> list[list[float | int]]:
    """The firmware's element.table ([[k, us], ...]): the law sampled at ``points`` stiffnesses
    evenly spread over the range, pulses in whole microseconds (what a servo resolves).
    A fixed bond (k_min == k_max) gets the two-point table of its one stiffness."""
    p0, p1 = pulse_us
    if k_max <= k_min:
        return [[float(k_min), int(round(p0))], [float(k_max), int(round(p1))]]
    n = max(2, points)
    table: list[list[float | int]] = []
    for i in range(n):
        k = k_max if i == n - 1 else k_min + (k_max - k_min) * i / (n - 1)
        us = p0 + (p1 - p0) * clamp_fraction(k, k_min, k_max, ks)
        table.append([float(k), int(round(us))])
    return table
