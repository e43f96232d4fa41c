"""Gradient benchmark: the gradient emulated boards compute locally vs the exact one.

Network li-mao-2024, in-process emulated boards running the real firmware; the host drives
one forward and one second phase per case through the session layer and reads back what every
node accumulated (``emulator.gradcheck.insitu_gradient``); the exact gradient comes from the
physics core at the world's *true* stiffness and the *nominal* loads. Figures per case: cosine
similarity and relative error ‖g − g_exact‖ / ‖g_exact‖.

``noise_sweep``
    Iris cases (one training sample per seed; loss −ln p_true with sharpness 5 at k_init; the
    adjoint force is −dL/du scaled to a 5 g peak, the scale divided out on the nodes). Points:
    the three named profiles (ideal, realistic, harsh) and the realistic profile with its strain
    noise (HX711 input noise and mechanical noise) multiplied by a factor from 0 to 100 while
    every systematic error (gauge gain 1 %, force scale 2 %, element errors) stays. Phases wait
    10 τ (``trainers.insitu.settle_ms_for``) and average ``--samples`` conversions.

``load_sweep``
    Geometric nonlinearity on an emulated *nonlinear* world (``World(nonlinear=True)``; the rig
    path supports it): a weight W at node 11 (−y), loss L = u_y(13) − u_y(14) (so f_adj =
    (−1, +1) at 13:y, 14:y, scaled to a 5 g peak). Exact: the tangent adjoint at the loaded
    equilibrium. Two in-situ estimates on the same boards:
    - linear adjoint: forward under W, then W off and f_adj on (what linear in-situ backprop
      does), nodes multiply e·e_adj;
    - incremental adjoint: forward under W, then W plus ε·f_adj, ``measure nudged eps=ε``:
      nodes multiply e·(e_N − e)/ε.
    Ideal parts by default (``--load-profile``) so that only the nonlinearity is measured.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from insitu.physics.linear import injected_loss_gradient

HELP = "in-situ gradient vs exact: cosine and relative error vs sensor noise and vs load"

NETWORK = "li-mao-2024"
NOISE_FACTORS_FULL = [0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]
NOISE_FACTORS_QUICK = [0.0, 1.0, 10.0]
LOADS_G_FULL = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 100.0, 200.0, 500.0]
LOADS_G_QUICK = [5.0, 20.0, 100.0]
G = 9.8
ADJOINT_PEAK_N = 0.049
PROFILES = ("ideal", "realistic", "harsh")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, help="cases per point (default 5; 2 with --quick)")
    p.add_argument("--samples", type=int, default=1, help="conversions averaged per phase (1)")
    p.add_argument(
        "--eps", type=float, default=0.05, help="incremental adjoint: nudge ε (fraction of 5 g)"
    )
    p.add_argument("--load-profile", default="ideal", choices=PROFILES)
    p.add_argument("--factors", help=argparse.SUPPRESS)  # tests: noise factors
    p.add_argument("--loads", help=argparse.SUPPRESS)  # tests: loads in grams


def network_path() -> Path:
    from insitu.resources import networks_dir

    return networks_dir() / f"{NETWORK}.toml"


def noisy_profile(factor: float) -> Any:
    """The realistic profile with its strain noise scaled by `factor` (systematics kept)."""
    from insitu.emulator.hardware import REALISTIC

    s = REALISTIC.strain
    strain = replace(
        s,
        adc_noise_counts=s.adc_noise_counts * factor,
        ambient_noise_m=s.ambient_noise_m * factor,
    )
    return REALISTIC.with_(name=f"realistic-noise-x{factor:g}", strain=strain)


def iris_case(net: Any, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(load, f_adj) of one Iris training sample at k_init (linear statics)."""
    from insitu.physics.linear import Equilibrium, compatibility
    from insitu.tasks import make_task

    task = make_task("iris", net, 0)
    io = net.io_set("iris")
    s = int(np.random.default_rng([seed, 0x6AD]).choice(task.train))
    f = np.zeros(net.n_nodes * net.dim)
    for p, v in zip(io.inputs, task.inputs[s], strict=True):
        f[net.dof(p)] = v
    u = Equilibrium(compatibility(net.positions, net.bonds), net.k_init, net.clamped_dofs()).solve(
        f
    )
    _, g = task.loss_grad(np.array([u[net.dof(p)] for p in io.outputs]), task.targets[s])
    fa = np.zeros_like(f)
    for p, v in zip(io.outputs, g, strict=True):
        fa[net.dof(p)] = -v
    return f, fa


def _stats(vals: list[float]) -> dict[str, float]:
    return {
        "mean": float(np.mean(vals)),
        "std": float(np.std(vals)),
        "min": float(np.min(vals)),
        "max": float(np.max(vals)),
    }


def measure_noise_point(net: Any, profile: Any, seeds: int, n: int) -> dict[str, Any]:
    from insitu.emulator.gradcheck import compare, exact_gradient, insitu_gradient
    from insitu.rig.lab import emulated_rig
    from insitu.trainers.insitu import settle_ms_for

    cos, rel = [], []
    name = profile if isinstance(profile, str) else profile.name
    settle = settle_ms_for(net, "ideal" if name == "ideal" else "realistic")
    for seed in range(seeds):
        load, fa = iris_case(net, seed)
        lab, rig = emulated_rig(net, profile, seed)
        g = insitu_gradient(rig, load, fa, settle_ms=settle, n=n)
        c = compare(net, g, exact_gradient(lab.world, load, fa), 0, 0)
        cos.append(c.cosine)
        rel.append(c.rel_err)
    return {"cosine": _stats(cos), "rel_err": _stats(rel), "settle_ms": settle}


def noise_sweep(net: Any, factors: list[float], seeds: int, n: int) -> dict[str, Any]:
    from insitu.emulator.hardware import REALISTIC

    named = []
    for prof in (*PROFILES, *(f"{p}+coil" for p in PROFILES)):  # servo, then coil builds
        row = {"profile": prof, **measure_noise_point(net, prof, seeds, n)}
        named.append(row)
    sweep = []
    base = REALISTIC.strain
    for f in factors:
        row = {
            "factor": f,
            "adc_noise_counts": base.adc_noise_counts * f,
            "ambient_noise_m": base.ambient_noise_m * f,
            **measure_noise_point(net, noisy_profile(f), seeds, n),
        }
        sweep.append(row)
    return {
        "case": "Iris training samples at k_init, loss -ln p_true (g = 5)",
        "seeds": seeds,
        "samples_per_phase": n,
        "profiles": named,
        "realistic_noise_factor": sweep,
    }


def load_case(net: Any, grams: float) -> tuple[np.ndarray, np.ndarray]:
    f = np.zeros(net.n_nodes * net.dim)
    f[net.dof(net.io_set("behaviour").inputs[0])] = -grams * 1e-3 * G
    fa = np.zeros_like(f)
    o13, o14 = net.io_set("behaviour").outputs
    fa[net.dof(o13)] = -1.0  # L = u_y(13) - u_y(14): dL/du = (+1, -1), f_adj = -dL/du
    fa[net.dof(o14)] = +1.0
    return f, fa


def truth_load_point(net: Any, grams: float, eps: float) -> dict[str, Any]:
    """The same two estimates from the physics core alone (no parts, no sensor range)."""
    from insitu.emulator.gradcheck import compare
    from insitu.physics.linear import Equilibrium, compatibility
    from insitu.physics.nonlinear import solve_nonlinear, tangent_adjoint_gradient

    load, fa = load_case(net, grams)
    sigma = ADJOINT_PEAK_N / float(np.max(np.abs(fa)))
    pos, bonds, k, mask = net.positions, net.bonds, net.k_init, net.clamped_dofs()
    st = solve_nonlinear(pos, bonds, k, mask, load)
    exact, _ = tangent_adjoint_gradient(pos, bonds, k, mask, st, injected_loss_gradient(fa))
    e = st.stretch
    eq = Equilibrium(compatibility(pos, bonds), k, mask)
    e_adj = eq.elongation(eq.solve(sigma * fa)) / sigma
    nudged = solve_nonlinear(pos, bonds, k, mask, load + eps * sigma * fa, u0=st.u)
    g_inc = e * (nudged.stretch - e) / (eps * sigma)
    c_lin = compare(net, e * e_adj, exact, 0, 0)
    c_inc = compare(net, g_inc, exact, 0, 0)
    o13 = net.io_set("behaviour").outputs[0]
    return {
        "u13_mm": -1e3 * float(st.u[net.dof(o13)]),
        "u13_linear_mm": -1e3 * float(eq.solve(load)[net.dof(o13)]),
        "max_elongation_mm": 1e3 * float(np.max(np.abs(e))),
        "max_strain": float(np.max(np.abs(e) / _lengths(net))),
        "linear_adjoint": {"cosine": c_lin.cosine, "rel_err": c_lin.rel_err},
        "incremental_adjoint": {"cosine": c_inc.cosine, "rel_err": c_inc.rel_err},
    }


def _lengths(net: Any) -> np.ndarray:
    from insitu.physics.linear import rest_lengths

    return rest_lengths(net.positions, net.bonds)


def measure_load_point(
    net: Any, grams: float, seeds: int, n: int, eps: float, profile: str
) -> dict[str, Any]:
    from insitu.emulator.gradcheck import compare, ports_forces
    from insitu.emulator.inprocess import InProcessLab
    from insitu.rig.lab import expected_configs
    from insitu.rig.session import Rig
    from insitu.trainers.insitu import settle_ms_for

    load, fa = load_case(net, grams)
    sigma = ADJOINT_PEAK_N / float(np.max(np.abs(fa)))
    settle = settle_ms_for(net, profile)
    res: dict[str, list[float]] = {k: [] for k in ("lin_cos", "lin_rel", "inc_cos", "inc_rel")}
    row: dict[str, Any] = {"load_g": grams, "load_n": grams * 1e-3 * G}
    row["truth"] = truth_load_point(net, grams, eps)
    for seed in range(seeds):
        lab = InProcessLab(net, profile=profile, seed=seed, nonlinear=True)
        rig = Rig(net, lab.link(), configs=expected_configs(net, lab.calibration))
        rig.connect()
        rig.tare(settle_ms=settle, n=n)
        exact = lab.world.exact_gradient(injected_loss_gradient(fa), f=load)
        # linear adjoint: load off, adjoint on
        rig.reset()
        rig.apply_forces(ports_forces(net, load))
        rig.measure("forward", tag=1, settle_ms=settle, n=n)
        sat = sum(h == "sat" for st in rig.state().values() for h in st.get("health", ()))
        if sat:  # the strain bridges' range (24-bit HX711, ~±1 mm) is exceeded: no rig figure
            row["rig"] = {"saturated_channels": int(sat)}
            return row
        rig.apply_forces(ports_forces(net, sigma * fa))
        rig.measure("adjoint", tag=1, settle_ms=settle, n=n, scale=1.0 / sigma)
        g_lin, _ = rig.accumulated()
        # incremental adjoint: load stays on, plus eps * f_adj
        rig.reset()
        rig.apply_forces(ports_forces(net, load))
        rig.measure("forward", tag=2, settle_ms=settle, n=n)
        rig.apply_forces(ports_forces(net, load + eps * sigma * fa))
        rig.measure("nudged", tag=2, settle_ms=settle, n=n, eps=eps, scale=1.0 / sigma)
        g_inc, _ = rig.accumulated()
        rig.forces_off()
        c_lin = compare(net, g_lin, exact, 0, 0)
        c_inc = compare(net, g_inc, exact, 0, 0)
        res["lin_cos"].append(c_lin.cosine)
        res["lin_rel"].append(c_lin.rel_err)
        res["inc_cos"].append(c_inc.cosine)
        res["inc_rel"].append(c_inc.rel_err)
    row["rig"] = {
        "saturated_channels": 0,
        "linear_adjoint": {"cosine": _stats(res["lin_cos"]), "rel_err": _stats(res["lin_rel"])},
        "incremental_adjoint": {
            "cosine": _stats(res["inc_cos"]),
            "rel_err": _stats(res["inc_rel"]),
        },
    }
    return row


def load_sweep(
    net: Any, loads: list[float], seeds: int, n: int, eps: float, profile: str
) -> dict[str, Any]:
    rows = [measure_load_point(net, g, seeds, n, eps, profile) for g in loads]
    return {
        "world": "emulated nonlinear world (World(nonlinear=True)) behind in-process boards",
        "profile": profile,
        "case": "weight at 11:y; L = u_y(13) - u_y(14); exact = tangent adjoint at the load",
        "eps": eps,
        "eps_force_n": eps * ADJOINT_PEAK_N,
        "seeds": seeds,
        "points": rows,
    }


def _floats(text: str | None, default: list[float]) -> list[float]:
    if not text:
        return default
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        from insitu.cli.main import UserError

        raise UserError(f"expected comma-separated numbers, got {text!r}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from insitu.bench import machine_info
    from insitu.network.schema import load_network

    net = load_network(network_path())
    seeds = args.seeds if args.seeds is not None else (2 if args.quick else 5)
    factors = _floats(args.factors, NOISE_FACTORS_QUICK if args.quick else NOISE_FACTORS_FULL)
    loads = _floats(args.loads, LOADS_G_QUICK if args.quick else LOADS_G_FULL)
    t0 = time.perf_counter()
    ns = noise_sweep(net, factors, seeds, args.samples)
    t1 = time.perf_counter()
    ls = load_sweep(net, loads, seeds, args.samples, args.eps, args.load_profile)
    t2 = time.perf_counter()
    return {
        "benchmark": "gradient",
        "quick": bool(args.quick),
        "network": NETWORK,
        "machine": machine_info(),
        "noise_sweep": {**ns, "wall_s": t1 - t0},
        "load_sweep": {**ls, "wall_s": t2 - t1},
        "paper_anchor": "experimental gradient vs simulation: normalised error < 0.1",
    }


# ----------------------------------------------------------------------------- output


def summary(result: dict[str, Any]) -> str:
    m = result["machine"]
    ns, ls = result["noise_sweep"], result["load_sweep"]
    lines = [
        f"gradient benchmark: {result['network']}, {ns['seeds']} case(s) per point; "
        f"{m['cpu']} ({m['cores']} cores)",
        "noise: profile / noise factor   cosine (mean, min)   rel. error (mean, max)",
    ]
    for r in ns["profiles"]:
        c, e = r["cosine"], r["rel_err"]
        lines.append(
            f"  {r['profile']:<24} {c['mean']:.5f} {c['min']:.5f}   {e['mean']:.4f} {e['max']:.4f}"
        )
    for r in ns["realistic_noise_factor"]:
        c, e = r["cosine"], r["rel_err"]
        lab = f"realistic noise x{r['factor']:g}"
        lines.append(f"  {lab:<24} {c['mean']:.5f} {c['min']:.5f}   {e['mean']:.4f} {e['max']:.4f}")
    lines.append(
        f"load (nonlinear world, {ls['profile']} parts on the rig; truth = physics core; "
        f"eps {ls['eps']}): rel. error linear / incremental"
    )
    for r in ls["points"]:
        t = r["truth"]
        rig = r["rig"]
        if rig.get("saturated_channels"):
            on_rig = f"rig: {rig['saturated_channels']} strain channel(s) saturated"
        else:
            on_rig = (
                f"rig {rig['linear_adjoint']['rel_err']['mean']:.4f} / "
                f"{rig['incremental_adjoint']['rel_err']['mean']:.2e}"
            )
        lines.append(
            f"  {r['load_g']:>5g} g  strain {t['max_strain']:6.2%}  truth "
            f"{t['linear_adjoint']['rel_err']:.4f} / {t['incremental_adjoint']['rel_err']:.2e}"
            f"   {on_rig}"
        )
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    ns, ls = result["noise_sweep"], result["load_sweep"]
    out = [
        "**Sensor noise** (Iris samples at k_init; "
        f"{ns['seeds']} seeds per point, {ns['samples_per_phase']} conversion(s) per phase, "
        "10 τ settle):",
        "",
        "| parts | HX711 noise (counts rms) | mechanical noise (nm rms) | cosine (mean / min) "
        "| relative error (mean / max) |",
        "|---|---:|---:|---:|---:|",
    ]

    def cells(r: dict[str, Any]) -> str:
        c, e = r["cosine"], r["rel_err"]
        return f"{c['mean']:.5f} / {c['min']:.5f} | {e['mean']:.4f} / {e['max']:.4f}"

    from insitu.emulator.hardware import get_profile

    for r in ns["profiles"]:
        s = get_profile(r["profile"]).strain
        out.append(
            f"| {r['profile']} | {s.adc_noise_counts:.3g} | {s.ambient_noise_m * 1e9:.3g} "
            f"| {cells(r)} |"
        )
    for r in ns["realistic_noise_factor"]:
        out.append(
            f"| realistic, noise ×{r['factor']:g} | {r['adc_noise_counts']:.3g} "
            f"| {r['ambient_noise_m'] * 1e9:.3g} | {cells(r)} |"
        )
    out += [
        "",
        f"**Load** (nonlinear emulated world, {ls['profile']} parts, weight at node 11, "
        f"L = u_y(13) − u_y(14), incremental ε = {ls['eps']} × 5 g = "
        f"{ls['eps_force_n'] * 1e3:.2f} mN):",
        "",
        "| load (g) | u_y(13) (mm) | linear model (mm) | max strain "
        "| linear adjoint: truth | rig | incremental adjoint: truth | rig |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in ls["points"]:
        t, rig = r["truth"], r["rig"]
        if rig.get("saturated_channels"):
            rl = ri = f"saturated ({rig['saturated_channels']} ch.)"
        else:
            rl = f"{rig['linear_adjoint']['rel_err']['mean']:.3g}"
            ri = f"{rig['incremental_adjoint']['rel_err']['mean']:.3g}"
        out.append(
            f"| {r['load_g']:g} | {t['u13_mm']:.3f} | {t['u13_linear_mm']:.3f} "
            f"| {t['max_strain']:.2%} | {t['linear_adjoint']['rel_err']:.3g} | {rl} "
            f"| {t['incremental_adjoint']['rel_err']:.3g} | {ri} |"
        )
    out += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, numpy {m['numpy']}. "
        f"Paper anchor: {result['paper_anchor']}.",
    ]
    return "\n".join(out) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns, ls = result["noise_sweep"], result["load_sweep"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120)
    sw = [r for r in ns["realistic_noise_factor"] if r["factor"] > 0]
    x = [r["factor"] for r in sw]
    a1.errorbar(
        x,
        [r["rel_err"]["mean"] for r in sw],
        yerr=[r["rel_err"]["std"] for r in sw],
        fmt="o-",
        label="relative error",
    )
    a1.plot(x, [1 - r["cosine"]["mean"] for r in sw], "s--", label="1 − cosine")
    for r, mk in zip(ns["profiles"][:3], ("", "^", "v"), strict=True):  # servo builds
        if r["profile"] == "ideal":
            continue
        fx = 1.0 if r["profile"] == "realistic" else None
        if fx:
            a1.plot(fx, r["rel_err"]["mean"], "k" + mk, ms=9, mfc="none", label="realistic")
        else:
            a1.axhline(r["rel_err"]["mean"], color="C3", ls=":", label="harsh (rel. error)")
    a1.axhline(0.1, color="grey", lw=0.8, label="paper's experiment: < 0.1")
    a1.set_xscale("log")
    a1.set_yscale("log")
    a1.set_xlabel("strain noise / realistic profile's")
    a1.set_ylabel("error")
    a1.set_title("In-situ gradient vs sensor noise (Iris samples)", fontsize=9)
    a1.grid(True, which="both", alpha=0.3)
    a1.legend(fontsize=7)
    pts = ls["points"]
    g = [r["load_g"] for r in pts]
    a2.loglog(g, [r["truth"]["linear_adjoint"]["rel_err"] for r in pts], "o-", color="C0",
              label="linear adjoint (load off), physics core")  # fmt: skip
    a2.loglog(g, [r["truth"]["incremental_adjoint"]["rel_err"] for r in pts], "s-", color="C1",
              label=f"incremental adjoint (ε = {ls['eps']}), physics core")  # fmt: skip
    ok = [r for r in pts if not r["rig"].get("saturated_channels")]
    if ok:
        gr = [r["load_g"] for r in ok]
        a2.loglog(gr, [r["rig"]["linear_adjoint"]["rel_err"]["mean"] for r in ok], "o",
                  ms=10, mfc="none", color="C0", label="linear, emulated boards")  # fmt: skip
        a2.loglog(gr, [r["rig"]["incremental_adjoint"]["rel_err"]["mean"] for r in ok], "s",
                  ms=10, mfc="none", color="C1", label="incremental, emulated boards")  # fmt: skip
    sat = [r["load_g"] for r in pts if r["rig"].get("saturated_channels")]
    if sat:
        a2.axvspan(min(sat), max(g), color="grey", alpha=0.15, label="strain bridges saturate")
    a2.set_xlabel("weight at node 11 (g)")
    a2.set_ylabel("relative error vs tangent adjoint")
    a2.axhline(0.1, color="grey", lw=0.8)
    a2.set_title(f"Nonlinear world, {ls['profile']} parts", fontsize=9)
    a2.grid(True, which="both", alpha=0.3)
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
