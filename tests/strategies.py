"""Hypothesis strategies for random spring networks (positions, rigid bonds, bounds, loads, clamps).

A drawn ``Problem`` is a rigid network under its clamps: jittered grid points triangulated by
Delaunay (every triangle, or tetrahedron in 3-D, is rigid and they share edges), plus a few
random long bonds, with enough nodes pinned to remove the rigid-body motions. Problems whose
clamped stiffness matrix is badly conditioned are filtered out, so finite differences on them
are meaningful. Units are SI like a network file (m, N, N/m).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from hypothesis import assume
from hypothesis import strategies as st
from scipy.spatial import Delaunay

from insitu.physics.linear import compatibility, stiffness_matrix

# Above this condition number of K_ff a problem is refused (assume): FD would measure noise.
MAX_CONDITION = 1e9


@dataclass(frozen=True)
class Problem:
    positions: np.ndarray  # (N, dim) m
    bonds: np.ndarray  # (B, 2) node indices
    k: np.ndarray  # (B,) N/m, inside [k_min, k_max]
    k_min: np.ndarray
    k_max: np.ndarray
    clamped: np.ndarray  # (N*dim,) bool
    u_clamped: np.ndarray  # (N*dim,) prescribed displacement on clamped DOFs, zero elsewhere
    f: np.ndarray  # (N*dim,) load on free DOFs, zero on clamped ones
    outputs: np.ndarray  # free DOF numbers the loss reads
    target_factors: np.ndarray  # per output: target = factor * (u at the output) + offset
    target_offsets: np.ndarray  # in units of the largest output displacement

    @property
    def dim(self) -> int:
        return int(self.positions.shape[1])

    @property
    def free(self) -> np.ndarray:
        return np.flatnonzero(~self.clamped)

    @property
    def C(self) -> sp.csr_matrix:
        return compatibility(self.positions, self.bonds)

    def loss_for(self, u0: np.ndarray) -> Loss:
        """The quadratic loss whose targets are set relative to a reference state u0.

        Targets on the scale of the outputs' own displacements keep the loss sensitive to k
        (a loss dominated by a constant would make finite differences measure rounding).
        """
        scale = float(np.max(np.abs(u0[self.outputs]))) or 1.0
        targets = self.target_factors * u0[self.outputs] + self.target_offsets * scale
        return Loss(self.outputs, targets, scale)


@dataclass(frozen=True)
class Loss:
    """L(u) = 1/2 sum_o ((u_o - t_o) / scale)^2, dimensionless."""

    outputs: np.ndarray
    targets: np.ndarray
    scale: float

    def __call__(self, u: np.ndarray) -> float:
        r = (u[self.outputs] - self.targets) / self.scale
        return 0.5 * float(r @ r)

    def grad(self, u: np.ndarray) -> np.ndarray:
        g = np.zeros_like(u)
        g[self.outputs] = (u[self.outputs] - self.targets) / self.scale**2
        return g


def _triangulated(points: np.ndarray) -> list[tuple[int, int]]:
    tri = Delaunay(points)
    edges: set[tuple[int, int]] = set()
    for s in tri.simplices:
        for a in range(len(s)):
            for b in range(a + 1, len(s)):
                i, j = sorted((int(s[a]), int(s[b])))
                edges.add((i, j))
    return sorted(edges)


@st.composite
def networks(
    draw: st.DrawFn, dims: tuple[int, ...] = (2,), max_side: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """(positions, bonds) of a generically rigid network (before clamping)."""
    dim = draw(st.sampled_from(dims))
    side_max = max_side if dim == 2 else 3
    shape = [draw(st.integers(2, side_max)) for _ in range(dim)]
    if dim == 2:
        assume(shape[0] * shape[1] >= 4)
    spacing = draw(st.sampled_from([0.016, 0.1, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    pts = grid.reshape(-1, dim).astype(float)
    pts += rng.uniform(-0.25, 0.25, pts.shape)
    pairs = _triangulated(pts)
    n = len(pts)
    # a few long-range bonds (springs may cross), distinct from the triangulation's
    have = set(pairs)
    for _ in range(draw(st.integers(0, 3))):
        i, j = sorted(int(x) for x in rng.choice(n, 2, replace=False))
        if (i, j) not in have:
            have.add((i, j))
            pairs.append((i, j))
    return pts * spacing, np.array(pairs, dtype=int)


@st.composite
def problems(
    draw: st.DrawFn,
    dims: tuple[int, ...] = (2,),
    prescribed: bool = True,
    max_outputs: int = 4,
) -> Problem:
    """A clamped, loaded network with stiffness bounds, outputs and targets.

    Clamps: ``dim`` nodes pinned in every direction (removes rigid motions of a rigid
    framework), plus a few extra single clamped DOFs; with ``prescribed`` the clamped DOFs may be
    held at non-zero displacements. Loads act on random free nodes.
    """
    pos, bonds = draw(networks(dims))
    n, dim = pos.shape
    B = len(bonds)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k_lo = draw(st.floats(1.0, 1e3))
    ratio = draw(st.floats(1.0, 10.0))
    k_min = np.full(B, k_lo)
    k_max = np.full(B, k_lo * ratio)
    k = rng.uniform(k_min, k_max)

    clamped = np.zeros(n * dim, dtype=bool)
    pinned = rng.choice(n, size=dim, replace=False)
    for i in pinned:
        clamped[i * dim : (i + 1) * dim] = True
    extra = draw(st.integers(0, 2))
    clamped[rng.choice(n * dim, size=extra, replace=False)] = True
    free = np.flatnonzero(~clamped)
    assume(free.size >= 2)

    length = float(np.median(np.linalg.norm(pos[bonds[:, 1]] - pos[bonds[:, 0]], axis=1)))
    u_clamped = np.zeros(n * dim)
    if prescribed and draw(st.booleans()):
        u_clamped[clamped] = rng.normal(0.0, 1e-3 * length, clamped.sum())

    f = np.zeros(n * dim)
    n_loaded = draw(st.integers(1, min(4, free.size)))
    scale = float(np.mean(k)) * length * 1e-3
    f[rng.choice(free, size=n_loaded, replace=False)] = rng.normal(0.0, scale, n_loaded)

    n_out = draw(st.integers(1, min(max_outputs, free.size)))
    outputs = np.sort(rng.choice(free, size=n_out, replace=False))
    factors = rng.uniform(-1.0, 2.0, n_out)
    offsets = rng.normal(0.0, 0.3, n_out)

    K = stiffness_matrix(compatibility(pos, bonds), k).toarray()[np.ix_(free, free)]
    assume(np.linalg.cond(K) < MAX_CONDITION)
    return Problem(pos, bonds, k, k_min, k_max, clamped, u_clamped, f, outputs, factors, offsets)


def examples(n: int) -> int:
    """Per-test example count; HYPOTHESIS_PROFILE=thorough runs 20x as many."""
    return n * 20 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else n
