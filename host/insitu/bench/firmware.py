"""Firmware benchmark: heap per node and per bond on 64-bit and 32-bit MicroPython, the
smallest heap a node boots and runs in, an allocation-free control step, compiled size.

- compiled size: every file of ``firmware/insitu_node`` through ``mpy-cross`` (as deployed),
  source and .mpy bytes;
- heap: ``tests/firmware/heap_probe.py`` (the firmware and the probe as .mpy; a config.json of
  N virtual-spring bonds plus force, clamp and displacement, canonical JSON as the deploy tool
  writes it; the node booted step by step as app.setup.make_node boots it; 305 control ticks
  under ``micropython.heap_lock()`` through idle, a measurement and after it) for several N, on
  two interpreters: the unix port (``micropython``, 64-bit: objects about twice a board's) and
  the same port built for WASI (``insitu.emulator.wasm32``, 32-bit like rp2/esp32). Per-node
  and per-bond bytes are the intercept and slope of a least-squares line through the node's
  own bytes vs N. The smallest heap is found by bisection in 256-byte steps; the 6-bond node
  is also run at exactly 64 KB (``fits_64k``). The probe collects garbage only between setup
  stages (the WASI build cannot collect inside nested calls), so its smallest heap is an
  upper bound for a board, whose collector runs whenever an allocation fails; a board that
  freezes the code into flash (firmware/manifest.py) keeps only the node's bytes on the heap.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HELP = "firmware heap per node and per bond (64- and 32-bit MicroPython), smallest heap, .mpy"

BONDS_FULL = [1, 2, 3, 4, 6, 8, 12]
BONDS_QUICK = [1, 6]
TARGET_BONDS = 6  # the node: 6 bonds in a 64 KB heap
HEAP_64K = 64 * 1024
STEP = 256  # bisection resolution of the smallest heap (bytes)
INTERPRETERS = {
    "unix64": "unix port, 64-bit",
    "wasm32": "unix port built for WASI, 32-bit",
}


def fw_tests() -> Path:
    """The heap probe and its fixture config live in the checkout's tests/firmware, so this
    benchmark runs from a source checkout only (insitu.resources.source_checkout)."""
    from insitu.cli.main import UserError
    from insitu.resources import source_checkout

    root = source_checkout()
    if root is None:
        raise UserError("insitu bench firmware runs from a source checkout (tests/firmware)")
    return root / "tests" / "firmware"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--heap", default="256K", help="heap for the per-bond rows (256K)")
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

        raise UserError(f"{name} not found (pip install -e '.[dev]')")
    return found


def compile_tree(dst: Path) -> list[dict[str, Any]]:
    """The firmware and the heap probe as .mpy under dst (one directory for MICROPYPATH);
    a row per firmware file: source and .mpy bytes."""
    mpy_cross = tool("mpy-cross")
    rows = []
    from insitu.resources import firmware_dir

    fw = firmware_dir()
    for f in sorted((fw / "insitu_node").rglob("*.py")) + [fw_tests() / "heap_probe.py"]:
        base = fw if f.is_relative_to(fw) else f.parent
        out = dst / f.relative_to(base).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        # -O3, as firmware/manifest.py freezes it for a board image (no asserts, no line
        # numbers in tracebacks: the node reports errors by name, not by line)
        subprocess.run([mpy_cross, "-O3", "-o", str(out), str(f)], check=True, timeout=60)
        if f.is_relative_to(fw):
            rows.append(
                {
                    "file": str(f.relative_to(fw)),
                    "source_bytes": f.stat().st_size,
                    "mpy_bytes": out.stat().st_size,
                }
            )
    return rows


def write_config(tree: Path, n_bonds: int) -> None:
    """config.json for the probe (the fixture node "n1": virtual springs, force, clamp,
    displacement), as deployed; the boot counter and any saved state removed."""
    from insitu_node.config import canonical

    spec = importlib.util.spec_from_file_location("fw_fixtures", fw_tests() / "fw_fixtures.py")
    assert spec is not None and spec.loader is not None
    fx = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fx)
    cfg = fx.config(n_bonds, coil=True, force=1, clamp=1, disp=1)
    (tree / "config.json").write_text(canonical(cfg) + "\n")
    for name in ("boots.txt", "state.json", "state.bak"):
        (tree / name).unlink(missing_ok=True)


def run_probe(tree: Path, heap: int | str, interp: str) -> subprocess.CompletedProcess[str]:
    """``micropython -X heapsize=HEAP -m heap_probe`` on one interpreter."""
    args = ["-X", f"heapsize={heap}", "-m", "heap_probe"]
    if interp == "wasm32":
        from insitu.emulator import wasm32

        return wasm32.run(args, {"MICROPYPATH": str(tree)})
    env = dict(os.environ, MICROPYPATH=str(tree))
    return subprocess.run(
        [tool("micropython"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=str(tree),
    )


def probe_result(stdout: str) -> dict[str, Any]:
    """The probe's line (gc.mem_alloc() marks, ticks that allocated, ok, free and used heap,
    word size, version) as the figures: bytes held by the code and the node, stage peaks."""
    m, allocs, ok, free, used, bits, ver = ast.literal_eval(stdout.strip().splitlines()[-1])
    stages = ("import", "boots", "config", "hal", "node_peak", "measure")
    peaks = {s.removesuffix("_peak"): m[s] for s in stages}
    code, own = m["code"] - m["start"], m["node"] - m["bus"]
    return {
        "code_bytes": code,  # the firmware modules, as loaded from .mpy
        "node_bytes": own,  # config, HAL objects, node state: what a board holds at run time
        "held_bytes": code + own,
        "held_after_measure_bytes": code + m["after"] - m["bus"],
        "start_bytes": m["start"],  # interpreter + the probe's own code
        "stub_bytes": m["bus"] - m["code"],  # the bus stub and the host's framed requests
        "stage_peak_bytes": peaks,  # heap in use at the end of each stage, garbage included
        "peak_bytes": max(peaks.values()),
        "peak_stage": max(peaks, key=lambda s: peaks[s]),
        "ticks": 305,
        "alloc_ticks": allocs,
        "measure_completed": bool(ok),
        "free_bytes": free,
        "heap_bytes": free + used,  # the heap's usable size
        "word_bits": bits,
        "micropython": ".".join(str(v) for v in ver),
    }


def _error(r: subprocess.CompletedProcess[str]) -> str:
    tail = (r.stdout + r.stderr).strip().splitlines()[-1:] or ["no output"]
    return tail[0]


def probe(tree: Path, n_bonds: int, heap: int | str, interp: str) -> dict[str, Any]:
    """The probe with n_bonds bonds: its figures, or the error it ended with."""
    write_config(tree, n_bonds)
    r = run_probe(tree, heap, interp)
    if r.returncode != 0:
        return {"bonds": n_bonds, "heap": heap, "error": _error(r)}
    return {"bonds": n_bonds, "heap": heap, **probe_result(r.stdout)}


def passed(p: dict[str, Any]) -> bool:
    """The probe ran to the end, no control tick allocated, every measurement (a calm one
    too) replied ok."""
    return "error" not in p and p["alloc_ticks"] == 0 and p["measure_completed"]


def fits(tree: Path, n_bonds: int, heap: int, interp: str) -> bool:
    return passed(probe(tree, n_bonds, heap, interp))


def smallest_heap(tree: Path, n_bonds: int, interp: str, hi: int = 1 << 19) -> int | None:
    """The smallest heap (a multiple of STEP bytes, by bisection) the probe passes in."""
    lo = 16 * 1024  # fails: the code alone is larger
    if not fits(tree, n_bonds, hi, interp):
        return None
    while hi - lo > STEP:
        mid = (lo + hi) // 2 // STEP * STEP
        if fits(tree, n_bonds, mid, interp):
            hi = mid
        else:
            lo = mid
    return hi


def _ints(text: str | None, default: list[int]) -> list[int]:
    if text is None:
        return default
    return [int(v) for v in text.split(",") if v.strip()]


def measure(tree: Path, interp: str, bonds: list[int], heap: str) -> dict[str, Any]:
    """Rows (one per bond count, with its smallest heap), the per-node/per-bond fit, and the
    6-bond node run at exactly 64 KB."""
    rows = []
    for n in bonds:
        row = probe(tree, n, heap, interp)
        if "error" not in row:
            row["smallest_heap_bytes"] = smallest_heap(tree, n, interp)
        rows.append(row)
    ok = [r for r in rows if "error" not in r]
    out: dict[str, Any] = {"name": INTERPRETERS[interp], "heapsize": heap, "probes": rows}
    if ok:
        out["micropython"] = ok[0]["micropython"]
        out["word_bits"] = ok[0]["word_bits"]
        out["code_bytes"] = ok[0]["code_bytes"]
        out["alloc_ticks"] = int(sum(r["alloc_ticks"] for r in ok))
        out["ticks"] = int(sum(r["ticks"] for r in ok))
        out["allocation_free"] = out["alloc_ticks"] == 0
    if len(ok) >= 2:
        n = np.array([r["bonds"] for r in ok], dtype=float)
        b = np.array([r["node_bytes"] for r in ok], dtype=float)
        slope, icpt = np.polyfit(n, b, 1)
        out["per_bond_bytes"] = float(slope)
        out["per_node_bytes"] = float(icpt)
    at64 = probe(tree, TARGET_BONDS, HEAP_64K, interp)
    out["fits_64k"] = {"ok": passed(at64), **at64}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from insitu.bench import machine_info

    bonds = _ints(args.bonds, BONDS_QUICK if args.quick else BONDS_FULL)
    with tempfile.TemporaryDirectory(prefix="insitu-fw-") as tmp:
        tree = Path(tmp)
        files = compile_tree(tree)
        heap = {i: measure(tree, i, bonds, args.heap) for i in INTERPRETERS}
    return {
        "benchmark": "firmware",
        "quick": bool(args.quick),
        "machine": machine_info(),
        "compiled": {
            "files": files,
            "source_bytes": sum(f["source_bytes"] for f in files),
            "mpy_bytes": sum(f["mpy_bytes"] for f in files),
        },
        "heap": heap,
    }


def _kb(b: int | None) -> str:
    return "—" if b is None else f"{b / 1024:.2f} KB"


def _fit_line(h: dict[str, Any]) -> str:
    f = h["fits_64k"]
    if f["ok"]:
        return (
            f"{f['bonds']}-bond node in a 64 KB heap: fits (peak {f['peak_bytes']:,} B in stage "
            f"{f['peak_stage']}, {f['free_bytes']:,} B free at the end)"
        )
    return f"{f['bonds']}-bond node in a 64 KB heap: does not fit ({f.get('error', 'checks')})"


def summary(result: dict[str, Any]) -> str:
    c = result["compiled"]
    lines = [
        f"firmware benchmark: compiled {len(c['files'])} files, source {c['source_bytes']:,} B"
        f" -> .mpy {c['mpy_bytes']:,} B",
    ]
    for key, h in result["heap"].items():
        lines.append(f"== {key} ({h['name']}, MicroPython {h.get('micropython', '?')})")
        lines.append(
            f"{'bonds':>6} {'node bytes':>11} {'code bytes':>11} {'alloc ticks':>12} "
            f"{'smallest heap':>14}"
        )
        for r in h["probes"]:
            if "error" in r:
                lines.append(f"{r['bonds']:>6}  error: {r['error']}")
            else:
                lines.append(
                    f"{r['bonds']:>6} {r['node_bytes']:>11,} {r['code_bytes']:>11,} "
                    f"{r['alloc_ticks']:>12} {_kb(r['smallest_heap_bytes']):>14}"
                )
        if "per_bond_bytes" in h:
            lines.append(
                f"per node {h['per_node_bytes']:,.0f} B + per bond {h['per_bond_bytes']:,.0f} B;"
                f" allocation-free control step: {h.get('allocation_free')}"
            )
        lines.append(_fit_line(h))
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    c, m = result["compiled"], result["machine"]
    hs = result["heap"]
    keys = list(hs)
    head = " | ".join(f"node state, {k} (bytes) | smallest heap, {k}" for k in keys)
    out = [
        f"| bonds per node | {head} | control ticks that allocated ({', '.join(keys)}) |",
        "|---:|" + "---:|---:|" * len(keys) + "---:|",
    ]
    by_bonds: dict[int, dict[str, dict[str, Any]]] = {}
    for k in keys:
        for r in hs[k]["probes"]:
            by_bonds.setdefault(r["bonds"], {})[k] = r
    for n in sorted(by_bonds):
        cells, allocs = [], []
        for k in keys:
            r = by_bonds[n].get(k)
            if r is None or "error" in r:
                cells.append(f"error: {r['error'] if r else 'not run'} | —")
            else:
                cells.append(f"{r['node_bytes']:,} | {_kb(r['smallest_heap_bytes'])}")
                allocs.append(f"{r['alloc_ticks']} of {r['ticks']}")
        out.append(f"| {n} | " + " | ".join(cells) + f" | {', '.join(allocs)} |")
    out.append("")
    for k in keys:
        h = hs[k]
        line = f"**{k}** ({h['name']}, MicroPython {h.get('micropython', '?')}): "
        if "code_bytes" in h:
            line += f"firmware code on the heap {h['code_bytes']:,} B"
        if "per_bond_bytes" in h:
            line += (
                f"; node state **{h['per_node_bytes']:,.0f} B per node + "
                f"{h['per_bond_bytes']:,.0f} B per bond**"
            )
        line += (
            f"; allocation-free control step: **{h.get('allocation_free')}** "
            f"({h.get('alloc_ticks')} of {h.get('ticks')} ticks allocated); {_fit_line(h)}."
        )
        out.append(line)
        f = h["fits_64k"]
        if "stage_peak_bytes" in f:
            p = f["stage_peak_bytes"]
            out.append(
                f"At 64 KB ({f['bonds']} bonds): interpreter + probe {f['start_bytes']:,} B, "
                f"code {f['code_bytes']:,} B, bus stub {f['stub_bytes']:,} B, node "
                f"{f['node_bytes']:,} B; heap in use at the end of each stage: "
                + ", ".join(f"{s} {v:,}" for s, v in p.items())
                + " B."
            )
        out.append("")
    out.append(
        f"Compiled with mpy-cross: {len(c['files'])} files, {c['source_bytes']:,} bytes of "
        f"source → **{c['mpy_bytes']:,} bytes of .mpy**. Machine {m['cpu']}."
    )
    return "\n".join(out) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120)
    for key, h in result["heap"].items():
        ok = [r for r in h["probes"] if "error" not in r]
        if not ok:
            continue
        n = [r["bonds"] for r in ok]
        (line,) = a1.plot(n, [r["node_bytes"] for r in ok], "o", label=f"{key}: node state")
        if "per_bond_bytes" in h:
            x = np.array([0, max(n)])
            fit = f"{h['per_node_bytes']:.0f} + {h['per_bond_bytes']:.0f}·bonds"
            a1.plot(x, h["per_node_bytes"] + h["per_bond_bytes"] * x, "-", alpha=0.6,
                    color=line.get_color(), label=fit)  # fmt: skip
        sm = [(r["bonds"], r["smallest_heap_bytes"]) for r in ok if r["smallest_heap_bytes"]]
        a2.plot([s[0] for s in sm], [s[1] / 1024 for s in sm], "o-", color=line.get_color(),
                label=f"{key}: code + node + setup garbage")  # fmt: skip
    a2.axhline(64, color="k", lw=0.8, ls="--", label="64 KB")
    a1.set_xlabel("bonds owned by the node")
    a1.set_ylabel("heap held by the node (bytes)")
    a1.set_title("Node state on MicroPython", fontsize=9)
    a2.set_xlabel("bonds owned by the node")
    a2.set_ylabel("smallest heap the probe passes in (KB)")
    a2.set_title("Code on the heap, collection only between setup stages", fontsize=9)
    for a in (a1, a2):
        a.grid(True, alpha=0.3)
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
