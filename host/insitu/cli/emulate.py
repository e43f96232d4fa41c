"""`insitu emulate`: a virtual lab — the emulated boards of a network on serial ports.

While it runs, lines typed on its standard input act on the emulated bench as a person would:
``hang NODE GRAMS`` hangs a known weight at a node (gravity along -y), ``remove NODE`` takes it
off. That is what ``insitu calibrate --port`` asks for against these boards.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from insitu.cli.element import PROFILE_NAMES, add_element, element_profile
from insitu.network.schema import load_network

HELP = "start the emulated boards of a network on pseudo-terminals until interrupted"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", help="network file (TOML)")
    p.add_argument("--profile", default="realistic", choices=PROFILE_NAMES)
    add_element(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the parts' errors and noise")
    p.add_argument(
        "--micropython",
        action="store_true",
        help="run each board as a real MicroPython process (mpremote can attach)",
    )
    p.add_argument("--workdir", help="--micropython: keep the boards' flash directories here")
    p.add_argument(
        "--bus",
        action="store_true",
        help="--micropython: every board on one emulated RS-485 bus, reached through one port "
        "(its adapter's; train with --port PORT --bus)",
    )
    p.add_argument(
        "--clock",
        choices=("real", "virtual"),
        default="real",
        help="in-process boards: real time (a bench) or virtual time, which passes only while "
        "a board measures, so a settle costs no wall time (default %(default)s)",
    )


GRAVITY = 9.81  # m/s^2, as insitu.calibrate.PromptWeights converts


def _bench_command(line: str, world: object, net: object) -> str:
    """One line of the bench's console: hang NODE GRAMS | remove NODE. Returns what was done
    (or what is wrong with the line); the boards never see it."""
    from insitu.emulator.weights import EmulatedWeights
    from insitu.network.schema import Port

    words = line.split()
    if not words:
        return ""
    try:
        if words[0] == "hang" and len(words) == 3:
            node, grams = int(words[1]), float(words[2])
        elif words[0] == "remove" and len(words) == 2:
            node, grams = int(words[1]), 0.0
        else:
            return f"? {line.strip()!r}: hang NODE GRAMS | remove NODE"
    except ValueError as exc:
        return f"? {line.strip()!r}: {exc}"
    if node not in net.node_ids:  # type: ignore[attr-defined]
        return f"? {line.strip()!r}: no node {node} in {net.name}"  # type: ignore[attr-defined]
    if not abs(grams) < 1e4:
        return f"? {line.strip()!r}: {grams:g} g is not a bench weight"
    port = Port(node, 1)
    EmulatedWeights(world).hang(port, -grams / 1000.0 * GRAVITY)
    return f"# {grams:g} g at node {node}" if grams else f"# nothing at node {node}"


def _console(stop: threading.Event, world: object, net: object) -> None:
    for line in sys.stdin:
        if stop.is_set():
            return
        msg = _bench_command(line, world, net)
        if msg:
            print(msg, flush=True)


def run(args: argparse.Namespace) -> int:
    args.profile = element_profile(args)
    net = load_network(args.network)
    stop = threading.Event()
    # Ctrl-C and SIGTERM stop the lab, even when started where SIGINT is ignored (a shell's
    # background job inherits SIG_IGN, and Python then never raises KeyboardInterrupt)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.micropython and args.clock == "virtual":
        from insitu.cli.main import UserError

        raise UserError("--clock virtual: MicroPython processes run on the wall clock "
                        "(drop --micropython)")  # fmt: skip
    from insitu.cli.main import UserError
    from insitu.emulator.mplab import too_many_boards
    from insitu.emulator.ptyserve import MAX_PTYS

    why = too_many_boards(net) if args.micropython else None
    if why is None and len(net.boards) > MAX_PTYS:
        why = (f"{net.name}: {len(net.boards):,} boards, one pseudo-terminal each; at most "
               f"{MAX_PTYS}")  # fmt: skip
    if why:
        raise UserError(why)
    if args.bus and not args.micropython:
        raise UserError("--bus: the emulated bus joins MicroPython boards (add --micropython); "
                        "in-process boards on a bus: insitu train/gradcheck --bus")  # fmt: skip
    bus_port = None
    if args.micropython:
        from insitu.emulator.mplab import MicroPythonLab

        lab = MicroPythonLab(net, args.profile, args.seed, workdir=args.workdir, bus=args.bus)
        server = lab
        lab.start()
        ports = lab.ports()
        if args.bus:
            bus_port = lab.bus_hub().port
    else:
        from insitu.emulator.clock import RealClock, VirtualClock
        from insitu.emulator.inprocess import InProcessLab
        from insitu.emulator.ptyserve import PtyServer

        clock = VirtualClock() if args.clock == "virtual" else RealClock()
        lab = InProcessLab(net, args.profile, args.seed, clock=clock)
        server = PtyServer(lab).start()
        ports = server.ports
    kind = "micropython" if args.micropython else f"in-process ({args.clock} time)"
    # what `--port` commands must be told about these boards
    deployed = args.micropython and lab.family is None
    family = "as the file's families, no --family" if deployed else "--family emu"
    print(f"# {net.name}: {len(ports)} {kind} boards, profile {args.profile} ({family}); "
          "Ctrl-C stops; type 'hang NODE GRAMS' or 'remove NODE' to load the bench")  # fmt: skip
    if bus_port is not None:  # one port: the bus adapter's; the boards' own are their drops
        print(f"{bus_port}\tbus\t{len(ports)} boards (train with --port {bus_port} --bus)",
              flush=True)  # fmt: skip
    else:
        for bid, port in ports.items():
            bd = next(b for b in net.boards if b.id == bid)
            print(f"{port}\tboard {bid}\tnode {bd.node}", flush=True)
    threading.Thread(target=_console, args=(stop, lab.world, net), daemon=True).start()
    from insitu.deploy.discovery import publish_lab

    # `insitu ports` lists these ptys, and `--port auto` takes them (with their family); a
    # bus is reached through its one port, not the boards' own
    published = publish_lab(net.name, None if deployed else "emu",
                            ports if bus_port is None else {0: bus_port},
                            None if bus_port is None else lab.bus_listen_s)  # fmt: skip
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        published.unlink(missing_ok=True)
        server.stop()
    return 0
