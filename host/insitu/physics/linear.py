"""Small-displacement statics of central-force spring networks (pure numpy/scipy).

Geometry is data (positions, bond index pairs); functions are pure. ``Equilibrium`` factorises
K_ff once per stiffness state and clamp set, then solves any number of load cases (forward,
adjoint, a whole batch) against that one factorisation. The sign convention is imported from
``insitu_node.learning.convention`` and never restated here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from insitu_node.learning.convention import adjoint_force, adjoint_gradient

# Networks up to this many free DOFs get an exact eigen check for mechanisms.
_DENSE_CHECK_MAX = 1500
# A pivot this small relative to the largest is a zero-energy mode, not a soft spring.
_PIVOT_RTOL = 1e-11


class MechanismError(ValueError):
    """The clamped network has zero-energy modes: no unique equilibrium exists."""


def rest_vectors(positions: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    return positions[bonds[:, 1]] - positions[bonds[:, 0]]


def rest_lengths(positions: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    return np.linalg.norm(rest_vectors(positions, bonds), axis=1)


def compatibility(positions: np.ndarray, bonds: np.ndarray) -> sp.csr_matrix:
    """C (bonds x dim*nodes) with e = C u and e_b = n_b . (u_j - u_i), n_b from i to j."""
    n_nodes, dim = positions.shape
    d = rest_vectors(positions, bonds)
    n = d / np.linalg.norm(d, axis=1)[:, None]
    B = bonds.shape[0]
    rows = np.repeat(np.arange(B), 2 * dim)
    cols = np.concatenate(
        [bonds[:, :1] * dim + np.arange(dim), bonds[:, 1:] * dim + np.arange(dim)], axis=1
    ).ravel()
    vals = np.concatenate([-n, n], axis=1).ravel()
    return sp.csr_matrix((vals, (rows, cols)), shape=(B, n_nodes * dim))


def stiffness_matrix(C: sp.csr_matrix, k: np.ndarray) -> sp.csr_matrix:
    """K = C^T diag(k) C."""
    return (C.T @ sp.diags(k) @ C).tocsr()


class Equilibrium:
    """One stiffness state and clamp set, factorised once; solve() is cheap after that.

    ``clamped`` is a boolean mask over DOFs held at prescribed values (zero unless given to
    ``solve``); loads on clamped DOFs are carried by the supports and ignored.
    ``check_modes=False`` skips the exact mechanism check (the pivot test still runs) for a
    caller that has checked the same topology and clamps before.
    """

    def __init__(
        self,
        C: sp.csr_matrix,
        k: np.ndarray,
        clamped: np.ndarray,
        node_ids: Sequence[int] | None = None,
        dim: int = 2,
        check_modes: bool = True,
    ) -> None:
        k = np.asarray(k, dtype=float)
        if k.shape != (C.shape[0],):
            raise ValueError(f"k has shape {k.shape}, network has {C.shape[0]} bonds")
        if not np.all(np.isfinite(k)) or np.any(k <= 0):
            bad = int(np.flatnonzero(~np.isfinite(k) | (k <= 0))[0])
            raise ValueError(f"stiffness of bond {bad} must be finite and > 0, got {k[bad]}")
        self.C = C
        self.k = k
        self.dim = dim
        self.clamped = np.asarray(clamped, dtype=bool)
        self.free = np.flatnonzero(~self.clamped)
        self.fixed = np.flatnonzero(self.clamped)
        self.node_ids = list(node_ids) if node_ids is not None else None
        K = stiffness_matrix(C, k)
        self.K = K
        Kf = K[self.free][:, self.free].tocsc()
        self._K_fc = K[self.free][:, self.fixed].tocsr()
        if self.free.size == 0:
            self._solve = lambda rhs: rhs
            return
        # zero-energy modes depend on the topology and clamps only (every k > 0), so a caller
        # that already checked this clamp set may skip the exact (cubic) eigen check
        if check_modes and self.free.size <= _DENSE_CHECK_MAX:
            self._check_dense(Kf.toarray())
        try:
            lu = spla.splu(Kf, permc_spec="COLAMD")
        except RuntimeError as exc:  # "Factor is exactly singular"
            raise MechanismError(self._mechanism_message(None, str(exc))) from None
        piv = np.abs(lu.U.diagonal())
        if piv.min() <= _PIVOT_RTOL * piv.max():
            raise MechanismError(self._mechanism_message(None, "near-zero pivot in K_ff"))
        self._solve = lu.solve

    def _check_dense(self, Kf: np.ndarray) -> None:
        w, v = scipy.linalg.eigh(Kf)
        if w[0] <= _PIVOT_RTOL * max(w[-1], 1e-300):
            raise MechanismError(self._mechanism_message(v[:, 0], "zero-energy mode"))

    def _mechanism_message(self, mode: np.ndarray | None, why: str) -> str:
        msg = (
            f"the network is a mechanism under its clamps ({why}): "
            "add bonds or fix more nodes so that no motion costs zero energy"
        )
        if mode is not None:
            full = np.zeros(self.clamped.size)
            full[self.free] = mode
            amp = np.linalg.norm(full.reshape(-1, self.dim), axis=1)
            moving = np.flatnonzero(amp > 0.1 * amp.max())
            names = [self.node_ids[i] if self.node_ids else i for i in moving[:8]]
            more = "" if moving.size <= 8 else f" and {moving.size - 8} more"
            msg += f"; nodes moving freely: {', '.join(map(str, names))}{more}"
        return msg

    def solve(self, f: np.ndarray, u_clamped: np.ndarray | None = None) -> np.ndarray:
        """Full displacement u (all DOFs) for loads f; columns of a 2-D f are load cases."""
        f = np.asarray(f, dtype=float)
        rhs = f[self.free]
        uc = None
        if u_clamped is not None and self.fixed.size:
            uc = np.asarray(u_clamped, dtype=float)[self.fixed]
            if uc.ndim < f.ndim:  # one clamp state shared by every load case
                uc = np.broadcast_to(uc[:, None], (uc.size, f.shape[1]))
            rhs = rhs - self._K_fc @ uc
        u = np.zeros(f.shape)
        u[self.free] = self._solve(rhs)
        if uc is not None:
            u[self.fixed] = uc
        return u

    def elongation(self, u: np.ndarray) -> np.ndarray:
        """e = C u (positive = stretched)."""
        return self.C @ u

    def energy(self, u: np.ndarray) -> float:
        e = self.C @ u
        return 0.5 * float(np.sum(self.k * e * e))

    def reaction(self, u: np.ndarray, f: np.ndarray) -> np.ndarray:
        """Force the clamps exert (K u - f on clamped DOFs, zero elsewhere)."""
        r = self.K @ u - f
        r[self.free] = 0.0
        return r

    def gradient(self, u: np.ndarray, dL_du: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact dL/dk for a loss of u: the adjoint problem on the same factorisation.

        Returns (dL/dk per bond, u_adj). The adjoint load is f_adj = adjoint_force(dL/du) on
        free DOFs with the clamps held (at zero change), so the gradient is e * e_adj.
        """
        u_adj = self.solve(adjoint_force(np.asarray(dL_du, dtype=float)))
        return adjoint_gradient(self.C @ u, self.C @ u_adj), u_adj


class DenseEquilibrium:
    """Equilibrium.solve/gradient for small networks: K_ff = C_f^T diag(k) C_f, dense Cholesky.

    Zero clamps only. Rigidity is checked once by the sparse Equilibrium in Model (it depends
    on the topology alone while every k > 0), so the factorisation here can assume it.
    """

    def __init__(self, C_free: np.ndarray, free: np.ndarray, n_dof: int, k: np.ndarray) -> None:
        self.C_free, self.free, self.n_dof, self.k = C_free, free, n_dof, k
        K_ff = C_free.T @ (k[:, None] * C_free)
        cho = scipy.linalg.cho_factor(K_ff, lower=True, check_finite=False)
        # The inverse of a few-dozen-DOF SPD matrix, from its one Cholesky factorisation: every
        # solve after that is a matrix product (triangular solves with 100 right-hand sides
        # were 100x slower on a busy machine, where BLAS threads contend).
        self._K_inv = scipy.linalg.cho_solve(cho, np.eye(free.size), check_finite=False)

    def solve(self, f: np.ndarray) -> np.ndarray:
        u = np.zeros(f.shape)
        u[self.free] = self._K_inv @ f[self.free]
        return u

    def gradient(self, u: np.ndarray, dL_du: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u_adj = self.solve(adjoint_force(dL_du))
        e = self.C_free @ u[self.free]
        e_adj = self.C_free @ u_adj[self.free]
        return adjoint_gradient(e, e_adj), u_adj
