"""`insitu emulate`: a virtual lab — the emulated boards of a network on serial ports."""

from __future__ import annotations

import argparse
import signal
import threading

from insitu.cli.element import add_element, element_profile
from insitu.network.schema import load_network

HELP = "start the emulated boards of a network on pseudo-terminals until interrupted"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", help="network file (TOML)")
    p.add_argument("--profile", default="realistic", choices=["ideal", "realistic", "harsh"])
    add_element(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the parts' errors and noise")
    p.add_argument(
        "--micropython",
        action="store_true",
        help="run each board as a real MicroPython process (mpremote can attach)",
    )
    p.add_argument("--workdir", help="--micropython: keep the boards' flash directories here")


def run(args: argparse.Namespace) -> int:
    args.profile = element_profile(args)
    net = load_network(args.network)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.micropython:
        from insitu.emulator.mplab import MicroPythonLab

        lab = MicroPythonLab(net, args.profile, args.seed, workdir=args.workdir)
        server = lab
        lab.start()
        ports = lab.ports()
    else:
        from insitu.emulator.clock import RealClock
        from insitu.emulator.inprocess import InProcessLab
        from insitu.emulator.ptyserve import PtyServer

        lab = InProcessLab(net, args.profile, args.seed, clock=RealClock())
        server = PtyServer(lab).start()
        ports = server.ports
    kind = "micropython" if args.micropython else "in-process"
    print(f"# {net.name}: {len(ports)} {kind} boards, profile {args.profile}; Ctrl-C stops")
    for bid, port in ports.items():
        bd = next(b for b in net.boards if b.id == bid)
        print(f"{port}\tboard {bid}\tnode {bd.node}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
