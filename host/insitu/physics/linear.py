"""Small-displacement statics of central-force spring networks (pure numpy/scipy).

Geometry is data (positions, bond index pairs); functions are pure. ``Equilibrium`` factorises
K_ff once per stiffness state and clamp set, then solves any number of load cases (forward,
adjoint, a whole batch) against that one factorisation. The sign convention is imported from
``insitu_node.learning.convention`` and never restated here.

K_ff of a rigid, clamped network is symmetric positive definite, and the factorisation uses
that: SuperLU in its symmetric mode (minimum-degree ordering of A^T + A, diagonal pivots) fills
in about 2/3 of what the general COLAMD ordering does (docs/bench/solver.md compares it with
CHOLMOD, which is faster but whose PyPI wheel aborts the process on a singular matrix).
Zero-energy modes are found by inverse iteration on the factorisation (a few solves, no dense
algebra, no extraction of the factor), which also names the nodes that move.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from insitu_node.learning.convention import adjoint_force, adjoint_gradient

# An eigenvalue of K_ff this small relative to its largest diagonal entry (a lower bound on
# the largest eigenvalue) is a zero-energy mode, not a soft spring.
_MODE_RTOL = 1e-11
# Inverse iterations of the mechanism check: a zero-energy mode dominates the iterate after one
# (it is amplified by lambda_2 / lambda_0 > 1e11); the Rayleigh quotient bounds lambda_0 above.
_MODE_ITERATIONS = 3


def injected_loss_gradient(f_adj: np.ndarray) -> np.ndarray:
    """The dL/du an adjoint force stands for. ``adjoint_force`` is a sign (±1), its own
    inverse, so this goes through the convention module too; it lives on the host because the
    node never needs it and its 64 K heap has a few dozen bytes to spare."""
    return adjoint_force(f_adj)


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


class StiffnessPattern:
    """K_ff and K_fc as linear maps of k, for one network and clamp set.

    K's entries are sums of k_b C_bi C_bj: each block's values are a fixed sparse matrix times
    k, so a new stiffness state is one product instead of C^T diag(k) C, slicing and sorting.
    Build it once per topology and clamp set; ``Equilibrium(..., pattern=p)`` uses it.
    """

    def __init__(self, C: sp.csr_matrix, clamped: np.ndarray) -> None:
        clamped = np.asarray(clamped, dtype=bool)
        self.shape = C.shape
        self.clamped = clamped
        C = C.tocsr()
        free, fixed = np.flatnonzero(~clamped), np.flatnonzero(clamped)
        Cf, Cc = C[:, free].tocsr(), C[:, fixed].tocsr()
        self._ff = self._block(Cf, Cf, csc=True)
        self._fc = self._block(Cf, Cc, csc=False)

    @staticmethod
    def _block(A: sp.csr_matrix, B: sp.csr_matrix, csc: bool) -> tuple:
        """A^T diag(k) B as (indptr, indices, V, shape, format) with data = V @ k."""
        A.sort_indices()
        B.sort_indices()
        nb = A.shape[0]
        a_row = np.repeat(np.arange(nb), np.diff(A.indptr))  # bond of each entry of A
        cnt = np.diff(B.indptr)[a_row]  # entries of B in the same bond's row
        rep = np.repeat(np.arange(a_row.size), cnt)
        first = np.repeat(np.cumsum(cnt) - cnt, cnt)
        q = B.indptr[a_row[rep]] + (np.arange(rep.size) - first)
        # every contribution k_b A_bi B_bj: its entry (r, c), bond b and weight
        r, c = A.indices[rep].astype(np.int64), B.indices[q].astype(np.int64)
        bond = a_row[rep]
        w = A.data[rep] * B.data[q]
        shape = (A.shape[1], B.shape[1])
        fmt = sp.csc_matrix if csc else sp.csr_matrix
        struct = fmt((np.ones(r.size), (r, c)), shape=shape)
        struct.sum_duplicates()
        struct.sort_indices()
        # stored entries in data order, keyed major * minor_size + minor, ascending
        n_minor = shape[0] if csc else shape[1]
        major = np.repeat(np.arange(struct.indptr.size - 1), np.diff(struct.indptr))
        keys = major * n_minor + struct.indices
        want = c * n_minor + r if csc else r * n_minor + c
        V = sp.csr_matrix((w, (np.searchsorted(keys, want), bond)), shape=(struct.nnz, nb))
        return struct.indptr, struct.indices, V, shape, fmt

    def blocks(self, k: np.ndarray) -> tuple[sp.spmatrix, sp.spmatrix]:
        """(K_ff as CSC, K_fc as CSR) for stiffness k."""
        out = []
        for indptr, indices, values, shape, fmt in (self._ff, self._fc):
            out.append(fmt((values @ k, indices, indptr), shape=shape))
        return out[0], out[1]


def factorise_spd(A: sp.csc_matrix) -> Callable[[np.ndarray], np.ndarray]:
    """A solve function for the symmetric positive-definite A, factorised once (SuperLU in
    symmetric mode). Raises RuntimeError when A is exactly singular."""
    lu = spla.splu(
        A,
        permc_spec="MMD_AT_PLUS_A",
        diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )
    return lu.solve


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
        pattern: StiffnessPattern | None = None,
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
        self._K: sp.csr_matrix | None = None
        if pattern is not None:
            if pattern.shape != C.shape or not np.array_equal(pattern.clamped, self.clamped):
                raise ValueError("pattern was built for another network or clamp set")
            Kf, self._K_fc = pattern.blocks(k)
        else:
            K = self._K = stiffness_matrix(C, k)
            Kf = K[self.free][:, self.free].tocsc()
            self._K_fc = K[self.free][:, self.fixed].tocsr()
        if self.free.size == 0:
            self._solve = lambda rhs: rhs
            return
        if not np.all(np.isfinite(Kf.data)):
            raise ValueError("the stiffness matrix overflows: stiffness too large for float64")
        try:
            self._solve = factorise_spd(Kf)
        except RuntimeError as exc:  # "Factor is exactly singular", "not positive definite"
            raise MechanismError(self._mechanism_message(self._soft_mode(Kf), str(exc))) from None
        # zero-energy modes depend on the topology and clamps only (every k > 0), so a caller
        # that already checked this clamp set may skip the check
        if check_modes:
            self._check_modes(Kf)

    def _inverse_iteration(self, Kf: sp.csc_matrix, solve: Callable[[np.ndarray], np.ndarray]):
        """Yield (unit iterate, Rayleigh quotient) of inverse iteration from a fixed start."""
        x = np.random.default_rng(0x5EED).standard_normal(Kf.shape[0])
        x /= np.linalg.norm(x)
        for _ in range(_MODE_ITERATIONS):
            y = solve(x)
            size = float(np.linalg.norm(y)) if np.all(np.isfinite(y)) else np.inf
            if not 0 < size < np.inf:
                return
            x = y / size
            yield x, float(x @ (Kf @ x))  # the quotient is >= the smallest eigenvalue

    def _soft_mode(self, Kf: sp.csc_matrix) -> np.ndarray | None:
        """The softest mode of a K_ff that would not factorise (shifted inverse iteration), to
        name the nodes that move; None if even the shifted matrix will not factorise."""
        shift = 1e-8 * float(Kf.diagonal().max())
        try:
            solve = factorise_spd((Kf + shift * sp.eye(Kf.shape[0], format="csc")).tocsc())
        except RuntimeError:
            return None
        iterates = [x for x, _ in self._inverse_iteration(Kf, solve)]
        return iterates[-1] if iterates else None

    @property
    def K(self) -> sp.csr_matrix:
        """The full stiffness matrix (assembled on first use when built from a pattern)."""
        if self._K is None:
            self._K = stiffness_matrix(self.C, self.k)
        return self._K

    def _check_modes(self, Kf: sp.csc_matrix) -> None:
        """Inverse iteration for the softest mode: MechanismError if it costs no energy."""
        scale = float(Kf.diagonal().max())  # <= the largest eigenvalue
        n = 0
        for x, q in self._inverse_iteration(Kf, self._solve):
            n += 1
            if q <= _MODE_RTOL * scale:
                raise MechanismError(self._mechanism_message(x, "zero-energy mode"))
        if n < _MODE_ITERATIONS:  # the factor's solves overflowed: numerically singular
            raise MechanismError(self._mechanism_message(self._soft_mode(Kf), "singular K_ff"))

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
