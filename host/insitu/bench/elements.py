"""Element self-test benchmark: does the response check tell working stiffness elements from
stuck ones, on every bond, under each hardware profile, for servo and voice-coil builds?

Network li-mao-2024, in-process emulated boards running the real firmware (``check`` op,
``insitu.rig.selftest.check_elements``). Per build (profile, or ``PROFILE+coil``: every bond
a voice-coil virtual spring, ``insitu.emulator.coil``) and seed:

- **healthy**: every element works; the whole self-test runs (tare, loads chosen per bond,
  56 checks). False alarms are bonds called ``stuck``; ``unloaded`` bonds were not judged.
- **stuck scan**: each bond's element in turn ignores commands (``faults.stuck_element``) and
  only that bond is checked; detected = verdict ``stuck``.

Margin of a check = the change of |e| in the expected direction over the node's threshold
max(noise, rel·|e0|) (rel = 0.02): a working element must exceed 1, a stuck one stays below.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from insitu.emulator.coil import ELEMENTS, profile_name

HELP = "element self-test: false alarms and stuck-element detection on every bond, by profile"

NETWORK = "li-mao-2024"
PROFILES = ("ideal", "realistic", "harsh")
# every profile built with each stiffness element: servo leaf springs, then voice coils
BUILDS = tuple(profile_name(p, e) for e in ELEMENTS for p in PROFILES)
REL = 0.02  # the node's default smallest relative response


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, help="boards' part draws per profile (3; 1 with --quick)")
    p.add_argument("--bonds", help="bonds for the stuck scan, e.g. 0,5,9 (all; 3 with --quick)")


def _margin(c: Any) -> float:
    moved = abs(c.e0) - abs(c.e1) if c.kp > c.k else abs(c.e1) - abs(c.e0)
    return float(moved / max(c.noise, REL * abs(c.e0), 1e-300))


def _lab(profile: str, seed: int) -> tuple[Any, Any]:
    from insitu.network.schema import load_network
    from insitu.resources import networks_dir
    from insitu.rig import emulated_rig

    net = load_network(networks_dir() / f"{NETWORK}.toml")
    return emulated_rig(net, profile, seed=seed)


def measure(profile: str, seed: int, bonds: list[int] | None) -> dict[str, Any]:
    from insitu.emulator import faults
    from insitu.rig.selftest import check_elements

    lab, rig = _lab(profile, seed)
    net = rig.network
    t0 = time.perf_counter()
    l0 = rig.counters.loadings
    report = check_elements(rig)
    healthy = {
        "bonds": len(report.checks),
        "ok": len(report.ok),
        "false_alarms": report.stuck,
        "unloaded": report.unloaded,
        "min_margin": min((_margin(c) for c in report.checks if c.verdict == "ok"), default=None),
        "ratio_range": [
            min(abs(c.e1 / c.e0) for c in report.checks if c.verdict == "ok"),
            max(abs(c.e1 / c.e0) for c in report.checks if c.verdict == "ok"),
        ],
        "loadings": int(rig.counters.loadings - l0),
        "time_s": time.perf_counter() - t0,
    }
    owner = {b: (bd.id, bd.bonds.index(b)) for bd in net.boards for b in bd.bonds}
    scan = []
    for b in range(net.n_bonds) if bonds is None else bonds:
        board, slot = owner[b]
        faults.stuck_element(lab.world, board, slot, True)
        r = check_elements(rig, bonds=[b], tare=False).checks[0]
        faults.stuck_element(lab.world, board, slot, False)
        rig.broadcast("reset", {"faults": True})  # the node latched it; next bond
        scan.append({"bond": b, "verdict": r.verdict, "margin": _margin(r)})
    rig.close()
    return {
        "profile": profile,
        "seed": seed,
        "healthy": healthy,
        "stuck_scan": scan,
        "detected": sum(s["verdict"] == "stuck" for s in scan),
        "scanned": len(scan),
        "max_stuck_margin": max((s["margin"] for s in scan), default=None),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from insitu.bench import machine_info
    from insitu.cli.main import UserError

    seeds = args.seeds or (1 if args.quick else 3)
    bonds: list[int] | None = None
    if args.bonds:
        try:
            bonds = [int(x) for x in args.bonds.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"--bonds {args.bonds!r}: expected indices like 0,5,9") from None
        bad = [b for b in bonds if not 0 <= b < 28]
        if bad:
            raise UserError(f"--bonds: {NETWORK} has bonds 0..27, not {bad}")
    elif args.quick:
        bonds = [0, 13, 27]
    rows = [measure(p, s, bonds) for p in BUILDS for s in range(seeds)]
    return {
        "benchmark": "elements",
        "quick": bool(args.quick),
        "network": NETWORK,
        "load_n": 0.049,
        "rel": REL,
        "machine": machine_info(),
        "rows": rows,
    }


def _by_profile(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in BUILDS:
        rows = [r for r in result["rows"] if r["profile"] == p]
        if not rows:
            continue
        h = [r["healthy"] for r in rows]
        out.append({
            "profile": p,
            "seeds": len(rows),
            "judged": sum(x["bonds"] - len(x["unloaded"]) for x in h),
            "bonds": sum(x["bonds"] for x in h),
            "false_alarms": sum(len(x["false_alarms"]) for x in h),
            "min_margin": min(x["min_margin"] for x in h if x["min_margin"] is not None),
            "detected": sum(r["detected"] for r in rows),
            "scanned": sum(r["scanned"] for r in rows),
            "max_stuck_margin": max(r["max_stuck_margin"] for r in rows),
            "loadings": h[0]["loadings"],
            "time_s": sum(x["time_s"] for x in h) / len(h),
        })  # fmt: skip
    return out


def summary(result: dict[str, Any]) -> str:
    lines = [f"element self-test benchmark ({result['network']}, load {result['load_n']} N)"]
    lines.append("profile          seeds  judged      false alarms  min margin ok  stuck found"
                 "  max margin stuck  loadings")  # fmt: skip
    for r in _by_profile(result):
        lines.append(
            f"{r['profile']:<16} {r['seeds']:>5}  {r['judged']:>4}/{r['bonds']:<6} "
            f"{r['false_alarms']:>8}      {r['min_margin']:>8.1f}      "
            f"{r['detected']:>3}/{r['scanned']:<6} {r['max_stuck_margin']:>10.3f}  "
            f"{r['loadings']:>8}"
        )
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    rows = [
        "| profile | seeds | bonds judged | false alarms | smallest margin, working | stuck "
        "found | largest margin, stuck | loadings per self-test | emulation time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in _by_profile(result):
        rows.append(
            f"| {r['profile']} | {r['seeds']} | {r['judged']} / {r['bonds']} | "
            f"{r['false_alarms']} | {r['min_margin']:.1f} | {r['detected']} / {r['scanned']} | "
            f"{r['max_stuck_margin']:.3f} | {r['loadings']} | {r['time_s']:.1f} s |"
        )
    return "\n".join(rows) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.8))
    for i, p in enumerate(BUILDS):
        rows = [r for r in result["rows"] if r["profile"] == p]
        stuck = [abs(s["margin"]) + 1e-4 for r in rows for s in r["stuck_scan"]]
        ax.scatter([i - 0.1] * len(stuck), stuck, marker="x", color="C3",
                   label="stuck element" if i == 0 else None)  # fmt: skip
        lo = [r["healthy"]["min_margin"] for r in rows]
        ax.scatter([i + 0.1] * len(lo), lo, marker="o", color="C2",
                   label="working (smallest per seed)" if i == 0 else None)  # fmt: skip
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="threshold")
    ax.set_yscale("log")
    ax.set_xticks(range(len(BUILDS)), BUILDS, fontsize=8)
    ax.set_ylabel("|e| change / threshold")
    ax.set_title(f"element response check, {result['network']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
