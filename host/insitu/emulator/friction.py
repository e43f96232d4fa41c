"""Stick-slip friction at the nodes' supports and slides: a quasi-static Coulomb dead zone.

A physical node rests on supports (PTFE pucks, ball transfer units, slides) whose friction
holds it where it is until the net force on it exceeds the static threshold F. The emulator's
world otherwise puts every free node at the frictionless equilibrium K u = f. With friction
``friction_n`` = F > 0 (a profile knob, ``Profile.friction_n``), each settling state instead
starts from where the nodes are (u0) and solves, per free DOF j (a node on an x and a y slide;
the box approximation of an isotropic friction cone):

- stuck: u_j = u0_j, and the out-of-balance force r_j = (f - K u)_j satisfies |r_j| <= F;
- slipping: r_j = F * s_j with s_j the sign of the motion u_j - u0_j (the spring force that
  moved it is what friction still holds back when it stops: static = kinetic friction).

That is a small linear complementarity problem; an active-set iteration solves it (stuck set
from |r(u0)| <= F, slipping DOFs solved with the friction force as a load, a slipping DOF that
would move backwards sticks, a stuck DOF whose |r| exceeds F slips). What it gives: a dead
zone (a small change of load moves nothing), hysteresis (unloading leaves a node displaced by
up to F/k), and elongations that depend on the load history: exactly what a learning rule
that reads e under one load and again under another suffers from.

Left out: dynamics (the world is quasi-static; a slip ends at rest), a static/kinetic
difference (stick-slip chatter), friction in the bonds themselves, and the nonlinear world
(``World(nonlinear=True)`` ignores the knob).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

MAX_ITER = 60  # active-set passes; a 14-node network settles in 2-5


def settle(
    C: sp.spmatrix,
    k: np.ndarray,
    clamped: np.ndarray,
    uc: np.ndarray,
    f: np.ndarray,
    u0: np.ndarray,
    friction_n: float,
) -> np.ndarray:
    """Rest position under loads ``f`` starting from ``u0`` with Coulomb friction per free DOF.

    C: compatibility matrix (bonds x DOFs) of the bonds present; k: their stiffness; clamped:
    bool mask of held DOFs, which sit at ``uc``. Returns u (all DOFs).
    """
    if friction_n < 0:
        raise ValueError(f"friction_n must be >= 0, got {friction_n}")
    u = np.array(u0, dtype=float)
    u[clamped] = uc[clamped]
    free = ~clamped
    K = (C.T @ sp.diags(k) @ C).toarray()
    Kff = K[np.ix_(free, free)]
    f_eff = f[free] - K[np.ix_(free, clamped)] @ uc[clamped]
    p = u[free].copy()  # where the free DOFs start
    if friction_n == 0:
        u[free] = np.linalg.solve(Kff, f_eff)
        return u
    r = f_eff - Kff @ p
    stuck = np.abs(r) <= friction_n
    s = np.sign(r)
    x = p.copy()
    for _ in range(MAX_ITER):
        x = p.copy()
        m = ~stuck
        if m.any():
            rhs = f_eff[m] - Kff[np.ix_(m, stuck)] @ p[stuck] - friction_n * s[m]
            x[m] = np.linalg.solve(Kff[np.ix_(m, m)], rhs)
        r = f_eff - Kff @ x
        back = m & ((x - p) * s <= 0)  # friction cannot push a node backwards: it sticks
        slip = stuck & (np.abs(r) > friction_n * (1 + 1e-12))
        if not back.any() and not slip.any():
            break
        stuck = (stuck & ~slip) | back
        s = np.where(slip, np.sign(r), s)
    u[free] = x
    return u


def dead_zone_m(friction_n: float, k: float) -> float:
    """Elongation a bond of stiffness k can hold against friction F: the dead zone F/k."""
    return friction_n / k
