"""SPSA kept local: every node draws its own +-1 perturbation from a broadcast seed.

The draw depends only on (seed, i, j) of the bond, so the host (or a test) can reproduce it.
"""

_M = 0xFFFFFFFF


def _mix(h):
    # murmur3 fmix32: cheap, well-spread, identical on every interpreter (ints are exact)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M
    h ^= h >> 16
    return h


def sign(seed, i, j):
    """Perturbation direction (+1 or -1) of bond (i, j) for this seed."""
    h = _mix((seed & _M) ^ 0x9E3779B9)
    h = _mix(h ^ (i & _M))
    h = _mix(h ^ ((j * 0x27D4EB2F) & _M))
    return 1 if h & 1 else -1


def gradient(loss_plus, loss_minus, c, s):
    """Two-sided SPSA estimate for one bond: (L+ - L-) / (2 c delta), delta = s = +-1."""
    return (loss_plus - loss_minus) / (2.0 * c) * s
