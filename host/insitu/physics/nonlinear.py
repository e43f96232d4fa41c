"""Geometrically nonlinear statics: Newton with a line search on the spring energy.

Energy E(u) = sum_b 1/2 k_b s_b(u)^2 - f.u, with s_b = |x_j + u_j - x_i - u_i| - L_b the bond's
stretch (its elongation in the nonlinear regime). At equilibrium the tangent stiffness K_T
serves the adjoint: K_T u_adj = f_adj on free DOFs, and the exact gradient of the nonlinear
model is dL/dk_b = s_b * de_b with de_b = grad(s_b) . u_adj — the forward stretch times the
incremental elongation, the same two-measurement structure a node uses (DESIGN.md section 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from insitu_node.learning.convention import adjoint_force, adjoint_gradient

from .linear import MechanismError, rest_lengths


class ConvergenceError(RuntimeError):
    """Newton did not reach equilibrium (e.g. the load buckles the network)."""


class UnstableEquilibriumError(ConvergenceError):
    """Newton found only equilibria whose tangent stiffness is indefinite (saddles): a real
    network would not rest there."""


# A tangent eigenvalue below -UNSTABLE_RTOL x its largest diagonal entry is negative curvature
# (an unstable equilibrium), not rounding of a stiffness that is merely zero.
UNSTABLE_RTOL = 1e-9
# Saddles left along their negative-curvature direction before giving up.
MAX_ESCAPES = 5


@dataclass
class NonlinearState:
    u: np.ndarray  # full displacement
    stretch: np.ndarray  # s_b, per bond
    iterations: int
    residual: float
    min_curvature: float = float("nan")  # smallest eigenvalue of K_T on free DOFs (N/m)
    escaped: int = 0  # saddles the solve left on its way to this (stable) equilibrium

    @property
    def stable(self) -> bool:
        return not self.min_curvature < 0


def _bond_geometry(positions, bonds, u):
    dim = positions.shape[1]
    x = positions + u.reshape(-1, dim)
    d = x[bonds[:, 1]] - x[bonds[:, 0]]
    length = np.linalg.norm(d, axis=1)
    return d, length


def _grad_matrix(bonds, n, n_nodes, dim) -> sp.csr_matrix:
    """G with row b = d s_b / d u (unit vector of the deformed bond, -n at i, +n at j)."""
    B = bonds.shape[0]
    rows = np.repeat(np.arange(B), 2 * dim)
    cols = np.concatenate(
        [bonds[:, :1] * dim + np.arange(dim), bonds[:, 1:] * dim + np.arange(dim)], axis=1
    ).ravel()
    vals = np.concatenate([-n, n], axis=1).ravel()
    return sp.csr_matrix((vals, (rows, cols)), shape=(B, n_nodes * dim))


def tangent_stiffness(positions, bonds, k, u) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """(K_T, G, s): tangent stiffness, stretch gradient and stretch at displacement u."""
    n_nodes, dim = positions.shape
    L0 = rest_lengths(positions, bonds)
    d, length = _bond_geometry(positions, bonds, u)
    n = d / length[:, None]
    s = length - L0
    G = _grad_matrix(bonds, n, n_nodes, dim)
    # material part k n n^T plus geometric part k s/l (I - n n^T), per bond block
    eye = np.eye(dim)
    nn = n[:, :, None] * n[:, None, :]
    blk = k[:, None, None] * (nn + (s / length)[:, None, None] * (eye - nn))
    idx = np.concatenate(
        [bonds[:, :1] * dim + np.arange(dim), bonds[:, 1:] * dim + np.arange(dim)], axis=1
    )
    sign = np.array([1.0] * dim + [-1.0] * dim)
    full = np.tile(blk, (1, 2, 2)) * (sign[:, None] * sign[None, :])[None]
    rows = np.repeat(idx, 2 * dim, axis=1).ravel()
    cols = np.tile(idx, (1, 2 * dim)).ravel()
    KT = sp.csr_matrix((full.ravel(), (rows, cols)), shape=(n_nodes * dim,) * 2)
    return KT, G, s


def energy(positions, bonds, k, u, f) -> float:
    L0 = rest_lengths(positions, bonds)
    _, length = _bond_geometry(positions, bonds, u)
    s = length - L0
    return 0.5 * float(np.sum(k * s * s)) - float(f @ u)


def softest_mode(KT: sp.spmatrix, free: np.ndarray) -> tuple[float, np.ndarray]:
    """(smallest eigenvalue, its unit eigenvector) of K_T restricted to the free DOFs."""
    Kff = KT[free][:, free]
    if free.size <= 2000:
        w, v = np.linalg.eigh(Kff.toarray())
        return float(w[0]), v[:, 0]
    w, v = spla.eigsh(Kff.tocsc(), k=1, which="SA", tol=1e-8)
    return float(w[0]), v[:, 0]


def solve_nonlinear(
    positions: np.ndarray,
    bonds: np.ndarray,
    k: np.ndarray,
    clamped: np.ndarray,
    f: np.ndarray,
    u0: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 100,
    stable: bool = True,
) -> NonlinearState:
    """A stable equilibrium under load f (clamped DOFs held where u0 puts them, else at zero).

    Newton steps on the free DOFs with a backtracking (Armijo) line search on the energy; a
    step that is not a descent direction (tangent not positive definite) falls back to a
    regularised one. ``tol`` is on the force residual relative to the load scale.

    Newton converges to any stationary point of the energy, saddles included: under a heavy
    symmetric load it finds the mirror-symmetric state although the network snaps sideways into
    a lower one. So the tangent stiffness of the result is checked; at a saddle the solve steps
    off along the negative-curvature mode (both ways; the lower energy wins) and converges
    again, up to MAX_ESCAPES times, then raises UnstableEquilibriumError. ``stable=False``
    returns the first equilibrium found, saddle or not, with its ``min_curvature``.
    """
    state = _newton(positions, bonds, k, clamped, f, u0, tol, max_iter)
    free = np.flatnonzero(~np.asarray(clamped, dtype=bool))
    if free.size == 0:
        state.min_curvature = np.inf
        return state
    for escape in range(MAX_ESCAPES + 1):
        KT, _, _ = tangent_stiffness(positions, bonds, k, state.u)
        lam, mode = softest_mode(KT, free)
        state.min_curvature, state.escaped = lam, escape
        scale = float(KT.diagonal()[free].max())
        if lam >= -UNSTABLE_RTOL * scale or not stable:
            return state
        if escape == MAX_ESCAPES:
            break
        # off the saddle by a small fraction of a bond along the mode; Newton's line search on
        # the energy then descends to the state beside it
        step = np.zeros_like(state.u)
        step[free] = mode * (1e-3 * float(np.max(rest_lengths(positions, bonds))))
        tries = []
        for sign in (1.0, -1.0):
            try:
                tries.append(
                    _newton(positions, bonds, k, clamped, f, state.u + sign * step, tol, max_iter)
                )
            except ConvergenceError:
                continue
        if not tries:
            break
        iterations = state.iterations + sum(st.iterations for st in tries)
        state = min(tries, key=lambda st: energy(positions, bonds, k, st.u, f))
        state.iterations = iterations
    raise UnstableEquilibriumError(
        f"only unstable equilibria found (tangent eigenvalue {state.min_curvature:.3g} N/m "
        f"after {MAX_ESCAPES} escapes from saddles): the load buckles the network"
    )


def _newton(positions, bonds, k, clamped, f, u0, tol, max_iter) -> NonlinearState:
    """Newton with a line search on the energy, to the nearest stationary point."""
    free = np.flatnonzero(~np.asarray(clamped, dtype=bool))
    u = np.zeros_like(f, dtype=float) if u0 is None else np.array(u0, dtype=float)
    scale = max(float(np.linalg.norm(f)), float(np.max(k)) * 1e-12)
    # below this Newton step (m) we are at the floating-point floor of the residual
    L0 = rest_lengths(positions, bonds)
    tiny = 1e-14 * float(np.max(L0))
    # rounding of the energy: s = |x_j - x_i| - L0 cancels, so its error is eps (L0 + |x|), not
    # eps |s|; E inherits k |s| times that per bond, plus the rounding of f.u
    reach = L0 + 2 * float(np.max(np.abs(positions)))
    E = energy(positions, bonds, k, u, f)
    res = np.inf
    for it in range(1, max_iter + 1):
        KT, G, s = tangent_stiffness(positions, bonds, k, u)
        r = (G.T @ (k * s) - f)[free]
        res = float(np.linalg.norm(r))
        if res <= tol * scale:
            return NonlinearState(u, s, it - 1, res)
        Kff = KT[free][:, free].tocsc()
        mu = 0.0
        for _ in range(8):
            try:
                A = Kff if mu == 0 else (Kff + mu * sp.eye(free.size, format="csc"))
                step = -spla.splu(A).solve(r)
            except RuntimeError:
                step = None
            if step is not None and np.all(np.isfinite(step)) and float(step @ r) < 0:
                break
            mu = max(mu * 10, 1e-6 * float(np.max(k)))
        else:
            raise ConvergenceError(f"no descent direction after {it} Newton steps")
        t = 1.0
        slope = float(step @ r)
        # near equilibrium the energy decrease of a Newton step falls below the rounding of E;
        # accept steps within that floor, or the search stalls short of the residual tolerance
        floor = (
            64
            * np.finfo(float).eps
            * (float(np.sum(k * np.abs(s) * reach)) + float(np.sum(np.abs(f * u))))
        )
        while True:
            trial = u.copy()
            trial[free] += t * step
            Et = energy(positions, bonds, k, trial, f)
            if Et <= E + 1e-4 * t * slope + floor or t < 1e-10:
                break
            t *= 0.5
        u, E = trial, Et
        if float(np.max(np.abs(t * step))) < tiny:
            _, _, s = tangent_stiffness(positions, bonds, k, u)
            return NonlinearState(u, s, it, res)
    raise ConvergenceError(
        f"Newton did not converge in {max_iter} steps (residual {res:.3g} N); the load may buckle"
        " the network"
    )


def tangent_adjoint_gradient(
    positions: np.ndarray,
    bonds: np.ndarray,
    k: np.ndarray,
    clamped: np.ndarray,
    state: NonlinearState,
    dL_du: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact dL/dk of the nonlinear model at an equilibrium: s_b * (G u_adj)_b.

    Returns (gradient, incremental elongation G u_adj per bond).
    """
    free = np.flatnonzero(~np.asarray(clamped, dtype=bool))
    KT, G, s = tangent_stiffness(positions, bonds, k, state.u)
    Kff = KT[free][:, free].tocsc()
    try:
        lu = spla.splu(Kff)
    except RuntimeError as exc:
        raise MechanismError(f"tangent stiffness is singular at this equilibrium ({exc})") from None
    u_adj = np.zeros_like(state.u)
    u_adj[free] = lu.solve(adjoint_force(np.asarray(dL_du, dtype=float))[free])
    de = G @ u_adj
    return adjoint_gradient(s, de), de
