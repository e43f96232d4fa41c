"""Stiffness box constraints, enforced at the bond by projection (clipping)."""


def clip(k, lo, hi):
    if k < lo:
        return lo
    if k > hi:
        return hi
    return k
