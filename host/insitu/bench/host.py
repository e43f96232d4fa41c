"""Host benchmark: time per training step and host messages per step vs network size.

Networks: the generator's triangular lattices (``insitu network triangular``), square patches
of about 10, 100 and 1,000 nodes, one board per node (every board runs the real firmware node
core), one input and two outputs. A step is one in-situ mini-batch exactly as
``trainers.insitu`` runs it: for each of ``--batch`` samples the input force, ``measure
forward``, the adjoint forces at the outputs, ``measure adjoint``; then one ``update`` (Adam).
Ideal parts and no settle wait, so the time is the host's and the emulated nodes' own cost;
on a bench add the physical floor, 2 loadings × settle time per sample (10 τ = 2 s each on
li-mao-2024).

Links:
- ``inprocess``: one in-process memory link to every board (a shared bus: a broadcast is one
  line), virtual clock;
- ``pty``: every board on its own pseudo-terminal (``emulator.ptyserve.PtyServer``, real
  clock, nodes ticking in a server thread), the host on pyserial, each line paced at
  ``--baud`` (default 115,200 baud, 10 bits per byte) in both directions, as a USB-serial
  adapter at that rate would. One port per board: a broadcast is one line per port.

Per step: wall time, host messages (requests by op, a broadcast counted once per link), lines
written, replies accepted, bytes each way, and the wire time those bytes need at 115,200 baud.

``--bus``: instead, every board on one emulated RS-485 bus (``emulator.bus``, ``--bus-baud``,
default 1 Mbaud; quiet phases, reply slots: docs/protocol.md, "Bus") at 10, 100 and 1,000
boards, in virtual time. Per step: the time the step spends on the bus (``wire_s``: the line's
frames, turnarounds, reply slots and the host's listening for silence — the step's rig time
less the time some board was measuring), the line's busy time, frames and bytes each way, and
the physical floor of the same step on a bench: its loadings × (settle 10 τ = 2 s on
li-mao-2024 + one HX711 sample at 10 SPS).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

HELP = "time and host messages per training step vs emulated nodes (in-process and pty links)"

SIZES_FULL = [10, 100, 1_000]
SIZES_QUICK = [10, 100]
PTY_SIZES_FULL = [10, 30]
PTY_SIZES_QUICK = [10]
BUS_SIZES = [10, 100, 1_000]
BAUD = 115_200
SETTLE_S = 2.0  # li-mao-2024: 10 tau
SAMPLE_S = 0.1  # one HX711 word at 10 SPS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=4, help="samples per step (default 4)")
    p.add_argument("--steps", type=int, help="timed steps per size (default 3; 2 with --quick)")
    p.add_argument("--baud", type=int, default=BAUD, help="pty pacing (default 115200)")
    p.add_argument("--bus", action="store_true",
                   help="every board on one emulated RS-485 bus (10, 100, 1000 boards)")
    p.add_argument("--bus-baud", type=int, default=1_000_000, metavar="BAUD",
                   help="the bus's baud rate (default 1000000)")
    p.add_argument("--sizes", help=argparse.SUPPRESS)  # tests: in-process node counts
    p.add_argument("--pty-sizes", help=argparse.SUPPRESS)  # tests: pty node counts ("" = none)


class MeteredLink:
    """Wraps a Link: counts bytes both ways and, with a baud rate, paces every line."""

    def __init__(self, inner: Any, baud: int | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.baud = baud
        self.bytes_out = 0
        self.bytes_in = 0

    def _pace(self, n: int) -> None:
        if self.baud:
            time.sleep(n * 10 / self.baud)

    def send(self, line: str) -> None:
        n = len(line) + 1
        self.bytes_out += n
        self._pace(n)
        self.inner.send(line)

    def receive(self, timeout: float) -> str | None:
        line = self.inner.receive(timeout)
        if line is not None:
            n = len(line) + 1
            self.bytes_in += n
            self._pace(n)
        return line

    def close(self) -> None:
        self.inner.close()


def lattice(n_nodes: int) -> Any:
    from insitu.network.generate import to_toml, triangular
    from insitu.network.schema import parse_network

    rows = max(2, round(math.sqrt(n_nodes)))
    cols = max(2, round(n_nodes / rows))
    if cols < 4:  # fewer columns and the two outputs fall on one node; 2 rows: they never move
        rows, cols = 3, 4
    doc = triangular(rows, cols)
    return parse_network(to_toml(doc), f"<triangular {rows}x{cols}>")


def _step(rig: Any, net: Any, rng: np.random.Generator, batch: int, step: int) -> None:
    from insitu.trainers.insitu import Phases, accumulate_batch

    io = net.io_set("default")
    X = -rng.uniform(0.01, 0.049, size=(batch, len(io.inputs)))
    y = np.zeros((batch, len(io.outputs)))

    def loss_grad(u: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        d = (u - target) * 1e3  # mm
        return float(np.mean(d**2)), 2e3 * d / d.size

    accumulate_batch(rig, io.inputs, io.outputs, X, y, loss_grad, Phases())
    rig.update(rule="adjoint", lr=0.1, opt="adam", batch=batch)


def measure(rig: Any, net: Any, links: list[MeteredLink], batch: int, steps: int) -> dict:
    rng = np.random.default_rng(0)
    rig.forces_off()
    _step(rig, net, rng, batch, 0)  # warm-up (first factorisation, caches)
    c0 = rig.counters.snapshot()
    b_out0, b_in0 = sum(ln.bytes_out for ln in links), sum(ln.bytes_in for ln in links)
    t0 = time.perf_counter()
    for s in range(steps):
        _step(rig, net, rng, batch, s + 1)
    dt = (time.perf_counter() - t0) / steps
    c1 = rig.counters.snapshot()
    msgs = sum(c1["by_op"].values()) - sum(c0["by_op"].values())
    b_out = (sum(ln.bytes_out for ln in links) - b_out0) / steps
    b_in = (sum(ln.bytes_in for ln in links) - b_in0) / steps
    by_op = {k: (v - c0["by_op"].get(k, 0)) / steps for k, v in c1["by_op"].items()}
    return {
        "step_s": dt,
        "messages_per_step": msgs / steps,
        "messages_by_op": {k: v for k, v in by_op.items() if v},
        "lines_sent_per_step": (c1["sent"] - c0["sent"]) / steps,
        "replies_per_step": (c1["replies"] - c0["replies"]) / steps,
        "retries": c1["retries"] - c0["retries"],
        "loadings_per_step": (c1["loadings"] - c0["loadings"]) / steps,
        "bytes_out_per_step": b_out,
        "bytes_in_per_step": b_in,
        "wire_s_at_115200": (b_out + b_in) * 10 / BAUD,
    }


def run_inprocess(n: int, batch: int, steps: int) -> dict[str, Any]:
    from insitu.emulator.inprocess import InProcessLab
    from insitu.rig.lab import expected_configs
    from insitu.rig.session import Rig

    net = lattice(n)
    t0 = time.perf_counter()
    lab = InProcessLab(net, profile="ideal", seed=0)
    link = MeteredLink(lab.link())
    rig = Rig(net, link, configs=expected_configs(net, lab.calibration))
    rig.connect()
    t_setup = time.perf_counter() - t0
    row = {"link": "inprocess", "nodes": net.n_nodes, "bonds": net.n_bonds, "boards": len(
        net.boards)}  # fmt: skip
    row["setup_s"] = t_setup
    row.update(measure(rig, net, [link], batch, steps))
    rig.close()
    return row


def run_pty(n: int, batch: int, steps: int, baud: int) -> dict[str, Any]:
    from insitu.emulator.clock import RealClock
    from insitu.emulator.inprocess import InProcessLab
    from insitu.emulator.ptyserve import PtyServer
    from insitu.links import SerialLink
    from insitu.rig.lab import expected_configs
    from insitu.rig.session import Rig

    net = lattice(n)
    lab = InProcessLab(net, profile="ideal", seed=0, clock=RealClock())
    with PtyServer(lab) as server:
        links = [MeteredLink(SerialLink(port), baud) for port in server.ports.values()]
        rig = Rig(net, links, configs=expected_configs(net, lab.calibration), timeout=5.0)
        try:
            t0 = time.perf_counter()
            rig.connect()
            row = {"link": f"pty@{baud}", "nodes": net.n_nodes, "bonds": net.n_bonds,
                   "boards": len(net.boards), "setup_s": time.perf_counter() - t0}  # fmt: skip
            row.update(measure(rig, net, links, batch, steps))
        finally:
            rig.close()
    return row


def run_bus(n: int, batch: int, steps: int, baud: int) -> dict[str, Any]:
    """A step on in-process boards that share one emulated bus (virtual time)."""
    from insitu.emulator.bus import BusTiming
    from insitu.emulator.inprocess import InProcessLab
    from insitu.rig.lab import expected_configs
    from insitu.rig.session import Rig

    net = lattice(n)
    lab = InProcessLab(net, profile="ideal", seed=0)
    bus = lab.bus(timing=BusTiming(baud=baud))
    rig = Rig(net, bus, configs=expected_configs(net, lab.calibration))
    t0 = time.perf_counter()
    v0 = lab.clock.now_us()
    rig.connect()
    row: dict[str, Any] = {"link": f"bus@{baud}", "nodes": net.n_nodes, "bonds": net.n_bonds,
                           "boards": len(net.boards), "setup_s": time.perf_counter() - t0,
                           "connect_rig_s": (lab.clock.now_us() - v0) / 1e6}  # fmt: skip
    rng = np.random.default_rng(0)
    rig.forces_off()
    _step(rig, net, rng, batch, 0)  # warm-up
    s0, c0, v0 = bus.stats.snapshot(), rig.counters.snapshot(), lab.clock.now_us()
    t0 = time.perf_counter()
    for s in range(steps):
        _step(rig, net, rng, batch, s + 1)
    row["step_s"] = (time.perf_counter() - t0) / steps
    s1, c1 = bus.stats.snapshot(), rig.counters.snapshot()

    def per(key: str, a: dict, b: dict) -> float:
        return (b[key] - a[key]) / steps

    rig_s = (lab.clock.now_us() - v0) / 1e6 / steps
    measuring = per("measuring_us", s0, s1) / 1e6
    loadings = per("loadings", c0, c1)
    floor = loadings * (SETTLE_S + SAMPLE_S)
    row.update({
        "loadings_per_step": loadings,
        "messages_per_step": sum(c1["by_op"].values()) / steps
        - sum(c0["by_op"].values()) / steps,
        "host_frames_per_step": per("host_frames", s0, s1),
        "board_frames_per_step": per("board_frames", s0, s1),
        "bytes_out_per_step": per("host_bytes", s0, s1),
        "bytes_in_per_step": per("board_bytes", s0, s1),
        "replies_kept_quiet_per_step": per("kept_quiet", s0, s1),
        "collisions": s1["collisions"] - s0["collisions"],
        "retries": c1["retries"] - c0["retries"],
        "line_busy_s_per_step": per("busy_us", s0, s1) / 1e6,
        "wire_s_per_step": rig_s - measuring,
        "floor_s_per_step": floor,
        "wire_fraction_of_floor": (rig_s - measuring) / floor,
    })
    rig.close()
    return row


def _ints(text: str | None, default: list[int]) -> list[int]:
    if text is None:
        return default
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        from insitu.cli.main import UserError

        raise UserError(f"expected comma-separated node counts, got {text!r}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from insitu.bench import machine_info

    steps = args.steps if args.steps is not None else (2 if args.quick else 3)
    if args.bus:
        return {
            "benchmark": "host",
            "files": "host-bus",
            "quick": bool(args.quick),
            "link": f"one emulated RS-485 bus at {args.bus_baud} baud (emulator.bus: 100 us "
            "turnaround, 20 us reply slots, quiet phases)",
            "network": "insitu network triangular (about square), one board per node, "
            "1 input, 2 outputs",
            "batch": args.batch,
            "steps": steps,
            "profile": "ideal; rig time virtual (the emulated line's time is the lab clock's)",
            "physical_floor": f"loadings x (settle {SETTLE_S} s + sample {SAMPLE_S} s)",
            "machine": machine_info(),
            "bus": [run_bus(n, args.batch, steps, args.bus_baud)
                    for n in _ints(args.sizes, BUS_SIZES)],  # fmt: skip
        }
    sizes = _ints(args.sizes, SIZES_QUICK if args.quick else SIZES_FULL)
    pty_sizes = _ints(args.pty_sizes, PTY_SIZES_QUICK if args.quick else PTY_SIZES_FULL)
    rows = [run_inprocess(n, args.batch, steps) for n in sizes]
    rows += [run_pty(n, args.batch, steps, args.baud) for n in pty_sizes]
    return {
        "benchmark": "host",
        "quick": bool(args.quick),
        "network": "insitu network triangular --rows R --cols C (about square; 3x4 for 10 nodes), "
        "one board per node, 1 input, 2 outputs",
        "batch": args.batch,
        "steps": steps,
        "profile": "ideal (no settle wait: host and node cost only)",
        "physical_floor": "2 loadings x settle per sample (li-mao-2024: 10 tau = 2 s each)",
        "machine": machine_info(),
        "scaling": rows,
    }


# ----------------------------------------------------------------------------- output


def _bus_cells(r: dict[str, Any]) -> list[str]:
    return [f"{r['boards']:,}", f"{r['bonds']:,}", f"{r['host_frames_per_step']:.0f}",
            f"{r['board_frames_per_step']:.0f}", f"{r['bytes_out_per_step']:,.0f}",
            f"{r['bytes_in_per_step']:,.0f}", f"{r['line_busy_s_per_step']:.3f}",
            f"{r['wire_s_per_step']:.3f}", f"{r['floor_s_per_step']:.1f}",
            f"{100 * r['wire_fraction_of_floor']:.1f} %"]  # fmt: skip


BUS_HEAD = ["boards", "bonds", "host frames", "board frames", "bytes host→boards",
            "bytes boards→host", "line busy (s)", "wire (s)", "floor (s)", "wire/floor"]


def _bus_summary(result: dict[str, Any]) -> str:
    lines = [f"host benchmark on one bus: {result['link']}; batch {result['batch']}, per step",
             "  ".join(f"{h:>12}" for h in BUS_HEAD)]  # fmt: skip
    lines += ["  ".join(f"{c:>12}" for c in _bus_cells(r)) for r in result["bus"]]
    return "\n".join(lines)


def _bus_markdown(result: dict[str, Any]) -> str:
    out = ["| " + " | ".join(BUS_HEAD) + " |", "|" + "---:|" * len(BUS_HEAD)]
    out += ["| " + " | ".join(_bus_cells(r)) + " |" for r in result["bus"]]
    m = result["machine"]
    out += ["", f"Per in-situ step ({result['batch']} samples × forward + adjoint, one update), "
            f"{result['link']}, mean of {result['steps']} steps after a warm-up, virtual time. "
            "wire: the step's rig time less the time a board was measuring; floor: "
            f"{result['physical_floor']}. Machine: {m['cpu']}, {m['cores']} cores."]
    return "\n".join(out) + "\n"


def summary(result: dict[str, Any]) -> str:
    if "bus" in result:
        return _bus_summary(result)
    m = result["machine"]
    lines = [
        f"host benchmark: batch {result['batch']}, {result['steps']} steps; {m['cpu']} "
        f"({m['cores']} cores)",
        f"{'link':<12} {'nodes':>6} {'bonds':>6} {'step (s)':>9} {'msgs/step':>10} "
        f"{'lines/step':>10} {'replies':>8} {'bytes out':>10} {'bytes in':>10}",
    ]
    for r in result["scaling"]:
        lines.append(
            f"{r['link']:<12} {r['nodes']:>6} {r['bonds']:>6} {r['step_s']:>9.3f} "
            f"{r['messages_per_step']:>10.1f} {r['lines_sent_per_step']:>10.1f} "
            f"{r['replies_per_step']:>8.1f} {r['bytes_out_per_step']:>10.0f} "
            f"{r['bytes_in_per_step']:>10.0f}"
        )
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    if "bus" in result:
        return _bus_markdown(result)
    m = result["machine"]
    out = [
        "| link | nodes | bonds | time per step (s) | host messages per step | lines written "
        "| replies | bytes host→nodes | bytes nodes→host | wire time at 115,200 baud (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["scaling"]:
        out.append(
            f"| {r['link']} | {r['nodes']:,} | {r['bonds']:,} | {r['step_s']:.3g} "
            f"| {r['messages_per_step']:.0f} | {r['lines_sent_per_step']:.0f} "
            f"| {r['replies_per_step']:.0f} | {r['bytes_out_per_step']:,.0f} "
            f"| {r['bytes_in_per_step']:,.0f} | {r['wire_s_at_115200']:.3g} |"
        )
    out += [
        "",
        f"A step: {result['batch']} samples × (forward + adjoint) + one update, ideal parts, no "
        f"settle wait; mean of {result['steps']} steps after a warm-up. Machine: {m['cpu']}, "
        f"{m['cores']} cores, Python {m['python']}.",
    ]
    return "\n".join(out) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "bus" in result:
        return _bus_plot(result, path, plt)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120)
    for link, mk in (("inprocess", "o-"), ("pty", "s--")):
        rs = [r for r in result["scaling"] if r["link"].startswith(link)]
        if not rs:
            continue
        lab = rs[0]["link"]
        b = [r["bonds"] for r in rs]
        a1.loglog(b, [r["step_s"] for r in rs], mk, label=lab)
        a2.semilogx(b, [r["messages_per_step"] for r in rs], mk, label=f"{lab}: host messages")
        a2.semilogx(b, [r["replies_per_step"] for r in rs], mk, alpha=0.4,
                    label=f"{lab}: replies")  # fmt: skip
    _dress(a1, "bonds", "time per step (s)", f"Host + emulated nodes, batch {result['batch']}")
    a2.set_yscale("log")
    _dress(a2, "bonds", "per step", "Messages per step (a broadcast = 1 per link)")
    return _save(fig, path, plt)


def _dress(ax: Any, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _bus_plot(result: dict[str, Any], path: Path, plt: Any) -> Path:
    rs = result["bus"]
    b = [r["boards"] for r in rs]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120)
    a1.loglog(b, [r["wire_s_per_step"] for r in rs], "o-", label="wire (line + slots + listening)")
    a1.loglog(b, [r["line_busy_s_per_step"] for r in rs], "s--", label="line busy")
    a1.loglog(b, [r["floor_s_per_step"] for r in rs], "k:", label="physical floor")
    a1.loglog(b, [0.1 * r["floor_s_per_step"] for r in rs], color="0.6", lw=0.8,
              label="10 % of the floor")  # fmt: skip
    _dress(a1, "boards on one bus", "seconds per step",
           f"Boards on one emulated RS-485 bus, batch {result['batch']}")  # fmt: skip
    a2.semilogx(b, [r["host_frames_per_step"] for r in rs], "o-", label="host frames")
    a2.semilogx(b, [r["board_frames_per_step"] for r in rs], "s-", label="board frames")
    a2.semilogx(b, [r["replies_kept_quiet_per_step"] for r in rs], "^--",
                label="replies kept quiet")  # fmt: skip
    a2.set_yscale("log")
    _dress(a2, "boards on one bus", "per step", "Frames on the line per step (O(1) in boards)")
    return _save(fig, path, plt)
