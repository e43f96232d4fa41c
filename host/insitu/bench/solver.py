"""Solver benchmark: equilibrium solve time vs network size, sparse factorise-once vs dense.

Networks are the generator's triangular lattices (``insitu network triangular``), square patches
of about N nodes, top row clamped, loaded at the generated input nodes. For each size:

- sparse (the path every simulator and the emulator use): assembly of C and K, and of K_ff and
  K_fc from a precomputed pattern when only k changes (``pattern_assemble_s``); the project's
  factorisation of K_ff alone (``factorise_s``: SuperLU in symmetric mode), plain scipy's default
  SuperLU (COLAMD ordering, ``scipy_colamd_factorise_s``) and CHOLMOD where the sksparse-minimal
  wheel is installed (``cholmod_factorise_s``) on the same matrix; the whole ``Equilibrium``
  set-up a caller pays (slicing, factorisation, mechanism check; ``setup_s``) and one solve
  against that factorisation (``solve_s``), plus the residual as a correctness check;
- dense, side by side on the same K_ff: Cholesky factorisation (``dense_factorise_s``, the dense
  analogue of factorise-once) and one solve (``dense_solve_s``); skipped with a reason above
  --dense-max nodes or when the matrix would not fit in memory.

SuperLU is single-threaded; the dense path runs with BLAS limited to one thread where that can
be set (``dense_blas_threads``), so the comparison is core for core. Times are medians of
repeats (at least ~0.2 s of work or 3 runs per figure, a single run for the largest sizes).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HELP = "equilibrium solve time vs network size: sparse factorise-once vs dense"

FULL_SIZES = [100, 300, 1_000, 3_000, 10_000, 30_000, 100_000]
QUICK_SIZES = [100, 300, 1_000, 3_000, 10_000]
DENSE_MAX_FULL = 10_000
DENSE_MAX_QUICK = 3_000
MIN_WORK_S = 0.2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dense-max",
        type=int,
        metavar="NODES",
        help=f"largest network solved densely (default {DENSE_MAX_FULL:,}; "
        f"{DENSE_MAX_QUICK:,} with --quick)",
    )
    # tests run the benchmark on tiny sizes
    p.add_argument("--sizes", help=argparse.SUPPRESS)


def lattice(n_nodes: int) -> dict[str, Any]:
    """Arrays of a square triangular-lattice patch of about n_nodes nodes (from the generator)."""
    from insitu.network.generate import triangular

    side = max(2, round(math.sqrt(n_nodes)))
    doc = triangular(side, side)
    ids = {n["id"]: i for i, n in enumerate(doc["nodes"])}
    pos = np.array([n["x"] for n in doc["nodes"]], dtype=float)
    bonds = np.array([[ids[a], ids[b]] for a, b in (bd["nodes"] for bd in doc["bonds"])])
    clamped = np.zeros(pos.size, dtype=bool)
    for n in doc["nodes"]:
        if n.get("fixed"):
            clamped[ids[n["id"]] * 2 : ids[n["id"]] * 2 + 2] = True
    f = np.zeros(pos.size)
    for port in doc["io"]["default"]["inputs"]:
        node = int(port.split(":")[0])
        f[ids[node] * 2 + 1] = -0.049  # 5 g, as in the paper
    k = np.full(len(bonds), float(doc["bond_model"]["k"]))
    return {"rows": side, "positions": pos, "bonds": bonds, "clamped": clamped, "f": f, "k": k}


def timed(fn: Callable[[], Any], single: bool = False) -> tuple[float, Any]:
    """Median wall time of fn over repeats (>= MIN_WORK_S of work or 3 runs), and its result."""
    times, out = [], None
    while True:
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        if single or (len(times) >= 3 and sum(times) >= MIN_WORK_S) or len(times) >= 50:
            return statistics.median(times), out


def cholmod_factorise() -> Callable[[Any], Any] | None:
    """CHOLMOD's sparse Cholesky from PyPI's sksparse-minimal wheel, for comparison only (it
    aborts the process on a singular matrix, so the library does not use it)."""
    try:
        from sksparse_minimal import SparseCholesky
    except ImportError:
        return None
    return SparseCholesky


def measure_sparse(net: dict[str, Any]) -> dict[str, Any]:
    import scipy.sparse.linalg as spla

    from insitu.physics.linear import (
        Equilibrium,
        StiffnessPattern,
        compatibility,
        factorise_spd,
        stiffness_matrix,
    )

    big = net["positions"].shape[0] > 20_000
    pos, bonds, k, clamped, f = (net[x] for x in ("positions", "bonds", "k", "clamped", "f"))

    def assemble():
        C = compatibility(pos, bonds)
        return C, stiffness_matrix(C, k)

    t_asm, (C, K) = timed(assemble, big)
    free = np.flatnonzero(~clamped)
    Kff = K[free][:, free].tocsc()
    pattern = StiffnessPattern(C, clamped)
    t_pattern, _ = timed(lambda: pattern.blocks(k), big)
    # the project's factorisation (SuperLU, symmetric mode) and plain scipy's default (COLAMD)
    t_fact, _ = timed(lambda: factorise_spd(Kff), big)
    t_colamd, lu = timed(lambda: spla.splu(Kff, permc_spec="COLAMD"), big)
    t_setup, eq = timed(lambda: Equilibrium(C, k, clamped), big)
    t_solve, u = timed(lambda: eq.solve(f))
    residual = float(np.linalg.norm(Kff @ u[free] - f[free]) / np.linalg.norm(f[free]))
    out = {
        "assemble_s": t_asm,
        "pattern_assemble_s": t_pattern,
        "factorise_s": t_fact,
        "scipy_colamd_factorise_s": t_colamd,
        "scipy_colamd_fill_nnz": int(lu.L.nnz + lu.U.nnz),
        "setup_s": t_setup,
        "solve_s": t_solve,
        "residual": residual,
        "u": u,
        "Kff": Kff,
    }
    cholmod = cholmod_factorise()
    if cholmod is None:
        out["cholmod"] = "not installed (pip install sksparse-minimal)"
    else:
        t_chol, ch = timed(lambda: cholmod(Kff), big)
        t_chol_solve, u_chol = timed(lambda: ch.solve_A(f[free]))
        out["cholmod"] = "measured"
        out["cholmod_factorise_s"] = t_chol
        out["cholmod_solve_s"] = t_chol_solve
        out["cholmod_vs_project_rel_diff"] = float(
            np.linalg.norm(u_chol - u[free]) / np.linalg.norm(u[free])
        )
    return out


def dense_skip_reason(n_nodes: int, n_free: int, dense_max: int) -> str | None:
    from insitu.bench import available_memory_bytes

    if n_nodes > dense_max:
        return f"above --dense-max {dense_max} nodes (O(n^3) time, O(n^2) memory)"
    need = 2 * 8 * n_free * n_free  # K_ff and its factor
    avail = available_memory_bytes()
    if avail is not None and need > 0.5 * avail:
        return f"needs {need / 2**30:.1f} GiB, {avail / 2**30:.1f} GiB available"
    return None


def measure_dense(Kff, f_free: np.ndarray, u_sparse: np.ndarray) -> dict[str, Any]:
    import scipy.linalg

    single = Kff.shape[0] > 6_000
    t_dense, A = timed(lambda: Kff.toarray(), single)
    t_fact, cho = timed(lambda: scipy.linalg.cho_factor(A, check_finite=False), single)
    t_solve, u = timed(lambda: scipy.linalg.cho_solve(cho, f_free, check_finite=False))
    diff = float(np.linalg.norm(u - u_sparse) / np.linalg.norm(u_sparse))
    return {
        "to_dense_s": t_dense,
        "dense_factorise_s": t_fact,
        "dense_solve_s": t_solve,
        "dense_vs_sparse_rel_diff": diff,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from insitu.bench import blas_threads, machine_info

    if args.sizes:
        try:
            sizes = [int(s) for s in args.sizes.split(",")]
        except ValueError:
            from insitu.cli.main import UserError

            raise UserError(f"--sizes {args.sizes!r}: expected comma-separated node counts")
    else:
        sizes = QUICK_SIZES if args.quick else FULL_SIZES
    dense_max = args.dense_max
    if dense_max is None:
        dense_max = DENSE_MAX_QUICK if args.quick else DENSE_MAX_FULL
    rows = []
    # one core for everything: SuperLU is single-threaded, and threaded BLAS on a busy machine
    # makes small dense kernels (the dense path, Equilibrium's eigen check) erratic
    with blas_threads(1) as limited:
        for target in sizes:
            rows.append(measure_size(target, dense_max))
    return {
        "benchmark": "solver",
        "quick": bool(args.quick),
        "network": "insitu network triangular --rows R (square patch, top row clamped)",
        "load": "0.049 N (5 g) along -y at the generated input nodes",
        "dense_max_nodes": dense_max,
        "blas_threads": 1 if limited else "library default",
        "machine": machine_info(),
        "sizes": rows,
    }


def measure_size(target: int, dense_max: int) -> dict[str, Any]:
    """One network size: sparse always, dense unless skipped (with the reason)."""
    net = lattice(target)
    n_nodes, n_free = net["positions"].shape[0], int((~net["clamped"]).sum())
    row: dict[str, Any] = {
        "target_nodes": target,
        "nodes": n_nodes,
        "lattice": f"{net['rows']}x{net['rows']}",
        "bonds": int(len(net["bonds"])),
        "free_dofs": n_free,
        # Equilibrium's mechanism check: inverse iteration on the factorisation (a few solves)
        "mechanism_check": "inverse iteration",
    }
    sp = measure_sparse(net)
    Kff, u = sp.pop("Kff"), sp.pop("u")
    row.update(sp)
    reason = dense_skip_reason(n_nodes, n_free, dense_max)
    if reason:
        row["dense"] = "skipped"
        row["dense_skipped"] = reason
    else:
        free = np.flatnonzero(~net["clamped"])
        row["dense"] = "measured"
        row.update(measure_dense(Kff, net["f"][free], u[free]))
        row["speedup_factorise"] = row["dense_factorise_s"] / row["factorise_s"]
        row["speedup_solve"] = row["dense_solve_s"] / row["solve_s"]
    return row


def _ms(v: Any) -> str:
    return f"{v * 1e3:10.3f}" if isinstance(v, float) else f"{'—':>10}"


def summary(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"solver benchmark on {m['cpu']} ({m['cores']} cores), numpy {m['numpy']}, "
        f"scipy {m['scipy']}",
        f"{'nodes':>8} {'bonds':>8} {'factorise':>10} {'colamd':>10} {'cholmod':>10} "
        f"{'setup':>10} {'solve':>10} {'dense fac':>10} {'dense sol':>10}   (ms)",
    ]
    for r in result["sizes"]:
        lines.append(
            f"{r['nodes']:>8} {r['bonds']:>8} {_ms(r['factorise_s'])} "
            f"{_ms(r['scipy_colamd_factorise_s'])} {_ms(r.get('cholmod_factorise_s'))} "
            f"{_ms(r['setup_s'])} "
            f"{_ms(r['solve_s'])} {_ms(r.get('dense_factorise_s'))} {_ms(r.get('dense_solve_s'))}"
            + (f"   dense skipped: {r['dense_skipped']}" if r["dense"] == "skipped" else "")
        )
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    out = [
        "| nodes | bonds | factorise (ms) | scipy COLAMD factorise (ms) "
        "| CHOLMOD factorise (ms) | set-up (ms) | solve (ms) "
        "| dense factorise (ms) | dense solve (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(v: Any, missing: str = "skipped") -> str:
        return f"{v * 1e3:.3g}" if isinstance(v, float) else missing

    for r in result["sizes"]:
        out.append(
            f"| {r['nodes']:,} | {r['bonds']:,} | {cell(r['factorise_s'])}"
            f" | {cell(r['scipy_colamd_factorise_s'])}"
            f" | {cell(r.get('cholmod_factorise_s'), 'not installed')} | {cell(r['setup_s'])}"
            f" | {cell(r['solve_s'])} | {cell(r.get('dense_factorise_s'))}"
            f" | {cell(r.get('dense_solve_s'))} |"
        )
    out.append("")
    out.append(
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, numpy {m['numpy']}, "
        f"scipy {m['scipy']}. Factorise and set-up: the project's path, SuperLU in symmetric "
        "mode (MMD on A^T+A, diagonal pivots; one thread); scipy COLAMD: `splu`'s default "
        "ordering on the same matrix; CHOLMOD: sksparse-minimal's wheel, for comparison only "
        "(it aborts the process on a singular matrix). Dense: Cholesky (LAPACK). "
        f"BLAS threads: {result['blas_threads']}."
    )
    return "\n".join(out) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["sizes"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    n = [r["nodes"] for r in rows]
    ax.loglog(n, [r["factorise_s"] for r in rows], "o-", color="C0", label="sparse factorise")
    ax.loglog(
        n, [r["scipy_colamd_factorise_s"] for r in rows], "x-", color="C2",
        label="scipy splu (COLAMD) factorise",
    )  # fmt: skip
    chol = [r for r in rows if r.get("cholmod") == "measured"]
    if chol:
        ax.loglog(
            [r["nodes"] for r in chol], [r["cholmod_factorise_s"] for r in chol], "^-",
            color="C3", label="CHOLMOD factorise",
        )  # fmt: skip
    ax.loglog(n, [r["setup_s"] for r in rows], ":", color="C0", label="sparse Equilibrium set-up")
    ax.loglog(n, [r["solve_s"] for r in rows], "s-", color="C1", label="sparse solve (per load)")
    dense = [r for r in rows if r["dense"] == "measured"]
    if dense:
        dn = [r["nodes"] for r in dense]
        fac = [r["dense_factorise_s"] for r in dense]
        ax.loglog(dn, fac, "o--", color="C0", mfc="none", label="dense factorise (Cholesky)")
        sol = [r["dense_solve_s"] for r in dense]
        ax.loglog(dn, sol, "s--", color="C1", mfc="none", label="dense solve")
    ax.set_xlabel("nodes (triangular lattice)")
    ax.set_ylabel("time (s)")
    ax.set_title("Equilibrium solve time vs network size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
