"""`insitu flash`: copy the firmware and each board's generated config.json with mpremote.

    insitu flash NETWORK --node 3 --port /dev/ttyACM0      one board
    insitu flash NETWORK --all [--port P ...]              every board, matched by unique id
    insitu flash NETWORK --all --check                     what differs; write nothing

Everything that can be checked before writing is checked before writing (network file, node,
pin map, firmware tree, ports, which board is on which port); such errors are one line on
stderr and exit status 2, with nothing written to any board. A board that was written but
does not identify as expected afterwards is a FAILED line and exit status 1.
See docs/deploy.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from insitu.cli.element import PROFILE_NAMES

HELP = "copy firmware + each board's config.json with mpremote, reset, verify (docs/deploy.md)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", help="network file, or a bundled network's name (li-mao-2024)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--node", type=int, metavar="ID", help="the board (id) to flash")
    which.add_argument(
        "--all", action="store_true", help="every board of the network, matched by unique id"
    )
    p.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="PORT",
        help="serial port (device path, socket://, rfc2217://); one with --node, any number "
        "with --all (default with --all: every serial port the OS lists)",
    )
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="UID=BOARD",
        help="board unique id (hex, as `insitu ports` shows) = board id; overrides the "
        "network file's unique_id",
    )
    p.add_argument("--pins", help="pin map (default: hardware/boards/<family>.toml)")
    p.add_argument(
        "--family",
        choices=("pico", "pico2", "esp32", "emu"),
        help="board family for every board (default: the network file's)",
    )
    p.add_argument(
        "--profile",
        default="ideal",
        choices=PROFILE_NAMES,
        help="emulator profile whose calibration emu boards get (default: ideal)",
    )
    p.add_argument(
        "--element",
        choices=("servo", "coil"),
        default="servo",
        help="stiffness element of real boards (default: servo)",
    )
    p.add_argument("--firmware", metavar="DIR", help="firmware tree (default: the project's)")
    p.add_argument(
        "--check",
        action="store_true",
        help="say what differs between each board and what flash would write (files by "
        "sha256, config hash) and write nothing; exit 0 identical, 1 different",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="copy every file even if unchanged; allow re-purposing a board that runs "
        "another node's config when no unique id is recorded (a board without a valid "
        "config, or that does not answer, needs no --force)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=8,
        metavar="N",
        help="boards flashed at once with --all (default: 8)",
    )
    p.add_argument(
        "--boot-timeout",
        type=float,
        default=20.0,
        metavar="S",
        help="seconds a board has to answer identify after its reset (default: 20)",
    )
    p.add_argument(
        "--bus",
        action="store_true",
        help="build the boards as drops on one RS-485 bus: each gets a bus.json (its reply "
        "slot, the pin map's [bus] UART and driver-enable pins) and then talks on the bus, "
        "not USB (docs/protocol.md \"Bus\", hardware/docs/bus.md)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError
    from insitu.deploy.discovery import DiscoveryError
    from insitu.deploy.flash import FlashError
    from insitu.hardware.pinmap import PinMapError

    try:
        return _run(args)
    except (FlashError, DiscoveryError, PinMapError) as exc:
        raise UserError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError
    from insitu.deploy.discovery import (
        PortReport,
        describe,
        identify_ports,
        list_serial_ports,
        parse_map,
        uid_table,
    )
    from insitu.deploy.flash import (
        FIRMWARE_DIR,
        FlashError,
        FlashResult,
        Mpremote,
        firmware_version,
        flash_board,
        flash_many,
        probe_retrying,
    )
    from insitu.deploy.nodeconfig import expected_hash, node_address
    from insitu.network.schema import load_network
    from insitu.resources import editable
    from insitu.rig.lab import board_configs
    from insitu_node import VERSION

    t0 = time.monotonic()
    net = load_network(args.network)
    if args.node is not None:
        board = next((b for b in net.boards if b.id == args.node), None)
        if board is None:
            known = ", ".join(str(b.id) for b in net.boards)
            raise UserError(f"--node {args.node}: no board with that id in {net.source} ({known})")
        boards = [board]
        if len(args.port) != 1:
            raise UserError("--node needs exactly one --port")
    else:
        boards = list(net.boards)
    table = uid_table(net, parse_map(args.map))
    uid_of = {bd.id: uid for uid, bd in table.items()}

    root = Path(args.firmware) if args.firmware else FIRMWARE_DIR
    version = firmware_version(root)
    if version != VERSION:
        raise UserError(
            f"firmware tree {root} is version {version}, this host speaks {VERSION}: "
            "the session would refuse the boards"
        )
    configs = board_configs(net, boards, args.family, args.pins, args.profile, args.element)
    buses = bus_files(net, boards, args.family, args.pins) if args.bus else {}

    # ---- which board is on which port (no writes, no interruption of running boards)
    explicit = bool(args.port)
    if explicit:
        seen: set[str] = set()
        ports = [(p, "") for p in args.port if not (p in seen or seen.add(p))]
    else:
        ports = list_serial_ports()
        if not ports:
            raise UserError("no serial ports found; pass --port")
    reports = identify_ports(ports)
    usable: list[PortReport] = []
    for rep in reports:
        if rep.error:
            if explicit:
                raise UserError(rep.error)
            _note(args, f"{rep.port}: {rep.error} (skipped)")
            continue
        usable.append(rep)

    uid_at: dict[str, str] = {}  # port -> unique id
    for rep in usable:
        if rep.identities:
            uid_at[rep.port] = rep.identities[0].uid
    silent = [rep.port for rep in usable if not rep.identities]

    if args.node is not None:
        bd = boards[0]
        port = usable[0].port
        want = uid_of.get(bd.id)
        rep = usable[0]
        if rep.identities:
            ident = rep.identities[0]
            if want and ident.uid != want:
                owner = table.get(ident.uid)
                who = f" ({describe(owner)})" if owner else ""
                raise UserError(
                    f"{port} has the board with unique id {ident.uid}{who}, but {describe(bd)} "
                    f"is {want}; nothing written"
                )
            # a board whose config is missing or fails validation runs no node: re-flashing
            # it repurposes nothing, so it needs no --force (neither does a board that does
            # not answer identify at all)
            repurpose = not ident.cfg_err and ident.address != node_address(bd)
            if not want and repurpose and not args.force and not args.check:
                raise UserError(
                    f"{port} runs node {ident.address}; flashing it as {describe(bd)} would "
                    "re-purpose it (record unique ids, or pass --force)"
                )
        jobs = [(port, bd, want)]
    else:
        missing_uid = [bd for bd in boards if bd.id not in uid_of]
        if missing_uid:
            bd = missing_uid[0]
            raise UserError(
                f"{describe(bd)} has no unique id: record unique_id in {editable(net.source)} or "
                f"pass --map UID={bd.id} (`insitu ports` shows each board's id); boards are "
                "matched by unique id, never by port order"
            )
        if silent:  # no firmware answers there: ask MicroPython's REPL for the unique id
            mp = Mpremote()
            for port in silent:
                try:
                    uid_at[port] = probe_retrying(mp, port)[0].uid
                except FlashError as exc:
                    if explicit:
                        raise UserError(
                            f"{port}: no insitu firmware answered identify and mpremote found "
                            f"no MicroPython REPL ({exc})"
                        ) from None
                    _note(args, f"{port}: not a MicroPython board (skipped)")
        port_of: dict[str, str] = {}
        for port, uid in uid_at.items():
            if uid in port_of:
                raise UserError(f"unique id {uid} answers on {port_of[uid]} and {port}")
            port_of[uid] = port
            if uid not in table:
                _note(
                    args,
                    f"{port}: unique id {uid or '?'} is not a board of {net.name} (left alone)",
                )
        missing = [bd for bd in boards if uid_of[bd.id] not in port_of]
        if missing:
            bd = missing[0]
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise UserError(
                f"{describe(bd)} (unique id {uid_of[bd.id]}) is on none of the "
                f"{len(usable)} port(s){more}; nothing written"
            )
        jobs = [(port_of[uid_of[bd.id]], bd, uid_of[bd.id]) for bd in boards]

    if args.check:
        return _check(args, net, jobs, reports, configs, root, t0, buses)

    # ---- flash
    n = len(jobs)
    if not args.json:
        print(
            f"flashing {n} board(s) of {net.name} with mpremote (firmware {version} from "
            f"{root}, {min(args.jobs, n)} at a time)",
            flush=True,
        )
    results: list[FlashResult | FlashError]
    if n == 1:
        port, bd, want = jobs[0]
        try:
            results = [
                flash_board(
                    port,
                    net,
                    bd,
                    configs[bd.id],
                    root=root,
                    expect_uid=want,
                    boot_timeout=args.boot_timeout,
                    force=args.force,
                    bus=buses.get(bd.id),
                )
            ]
        except FlashError as exc:
            if not exc.written:
                raise
            results = [exc]
        _progress(args, results[0], 1, 1, jobs)
    else:
        results = flash_many(
            jobs,
            net,
            configs,
            root=root,
            parallel=args.jobs,
            force=args.force,
            boot_timeout=args.boot_timeout,
            on_done=lambda r, k, m: _progress(args, r, k, m, jobs),
            buses=buses,
        )
    ok = [r for r in results if isinstance(r, FlashResult) and r.ok]
    seconds = time.monotonic() - t0
    copied = sum(len(r.copied) for r in results if isinstance(r, FlashResult))
    skipped = sum(len(r.skipped) for r in results if isinstance(r, FlashResult))
    if args.json:
        print(json.dumps(_summary(results, jobs, seconds, version, expected_hash, configs)))
    else:
        print(
            f"{len(ok)}/{n} board(s) ok in {seconds:.1f} s: {copied} file(s) copied, "
            f"{skipped} unchanged skipped"
        )
    if len(ok) != n:
        bad = next(r for r in results if not (isinstance(r, FlashResult) and r.ok))
        msg = bad.line() if isinstance(bad, FlashResult) else str(bad)
        print(f"insitu flash: error: {len(ok)}/{n} boards ok; {msg}", file=sys.stderr)
        return 1
    return 0


def bus_files(net: Any, boards: list, family: str | None, pins: str | None) -> dict[int, dict]:
    """Each board's bus.json (deploy.nodeconfig.bus_config) with the UART and driver-enable
    pins of its pin map's [bus] table; UserError if a map has none or a board owns more
    bonds than a bus build of its board keeps."""
    from insitu.cli.main import UserError
    from insitu.deploy.nodeconfig import bus_config, bus_slots
    from insitu.hardware.pinmap import default_pinmap_path, load_pinmap

    slots = bus_slots(net)
    maps: dict[str, Any] = {}
    out = {}
    for bd in boards:
        fam = family or bd.family
        if fam == "emu":  # an emulated board's drop is its console
            out[bd.id] = bus_config(slots[bd.id])
            continue
        path = pins or str(default_pinmap_path(fam))
        pm = maps[path] = maps.get(path) or load_pinmap(path)  # one read per map
        if pm.bus is None:
            raise UserError(f"--bus: pin map {path} has no [bus] table (UART, DE pins)")
        if len(bd.bonds) > pm.bus.slots:
            raise UserError(f"--bus: board {bd.id} owns {len(bd.bonds)} bonds; a {fam} board on "
                            f"a bus keeps {pm.bus.slots} bond slots ({path} [bus])")  # fmt: skip
        out[bd.id] = bus_config(slots[bd.id], uart=pm.bus.json())
    return out


def _note(args: argparse.Namespace, text: str) -> None:
    print(f"note: {text}", file=sys.stderr if args.json else sys.stdout, flush=True)


def _progress(args: argparse.Namespace, r: Any, k: int, n: int, jobs: list) -> None:
    if args.json:
        return
    from insitu.deploy.flash import FlashResult

    if isinstance(r, FlashResult):
        line = r.line()
    else:
        line = f"FAILED: {r}"
    print(f"[{k}/{n}] {line}", flush=True)


def _summary(
    results: list, jobs: list, seconds: float, version: str, expected_hash: Any, configs: dict
) -> dict[str, Any]:
    from insitu.deploy.flash import FlashResult

    boards = []
    for (port, bd, _), r in zip(jobs, results, strict=True):
        if isinstance(r, FlashResult):
            boards.append(
                {
                    "board": bd.id,
                    "node": bd.node,
                    "port": port,
                    "uid": r.uid,
                    "ok": r.ok,
                    "copied": r.copied,
                    "skipped": r.skipped,
                    "bytes": r.bytes_copied,
                    "seconds": round(r.seconds, 3),
                    "mpremote_calls": r.mpremote_calls,
                    "config": expected_hash(configs[bd.id]),
                    "problem": r.problem,
                    "notes": r.notes,
                }
            )
        else:
            boards.append(
                {"board": bd.id, "node": bd.node, "port": port, "ok": False, "problem": str(r)}
            )
    return {
        "firmware": version,
        "seconds": round(seconds, 3),
        "ok": all(b["ok"] for b in boards),
        "boards": boards,
    }


def _check(
    args: argparse.Namespace,
    net: Any,
    jobs: list,
    reports: list,
    configs: dict,
    root: Path,
    t0: float,
    buses: dict | None = None,
) -> int:
    """``--check``: what differs between each board and what flashing it would write; exit 0
    when every board is identical, 1 when any differs, 2 when a board cannot be checked."""
    from insitu.cli.main import UserError
    from insitu.deploy.flash import (
        CheckResult,
        FlashError,
        Mpremote,
        check_board,
        firmware_version,
        run_many,
    )

    ident_at = {rep.port: rep.identities[0] for rep in reports if rep.identities}
    mp = Mpremote()

    def one(port: str, bd: Any, uid: str | None) -> CheckResult:
        return check_board(
            port,
            net,
            bd,
            configs[bd.id],
            running=ident_at.get(port),
            root=root,
            expect_uid=uid,
            mpremote=mp,
            boot_timeout=args.boot_timeout,
            bus=(buses or {}).get(bd.id),
        )

    def show(r: CheckResult | FlashError, k: int, n: int) -> None:
        if not args.json and isinstance(r, CheckResult):
            print(f"[{k}/{n}] {r.line()}", flush=True)

    results = run_many(jobs, one, args.jobs, show)
    failed = [r for r in results if isinstance(r, FlashError)]
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise UserError(f"{failed[0]}{more}; nothing written")
    checked = [r for r in results if isinstance(r, CheckResult)]
    differ = [r for r in checked if not r.identical]
    if args.json:
        boards = []
        for r in checked:
            boards.append(
                {
                    "board": r.board.id,
                    "node": r.board.node,
                    "port": r.port,
                    "uid": r.uid,
                    "identical": r.identical,
                    "changed": r.changed,
                    "missing": r.missing,
                    "same": len(r.same),
                    "config": r.config_hash,
                    "config_on_board": r.running.config_hash if r.running else None,
                    "problem": r.problem,
                    "differences": r.differences(),
                }
            )
        print(
            json.dumps(
                {
                    "check": True,
                    "identical": not differ,
                    "seconds": round(time.monotonic() - t0, 3),
                    "boards": boards,
                }
            )
        )
    elif differ:
        print(f"{len(differ)} of {len(checked)} board(s) differ from what flash would write")
    else:
        print(
            f"{len(checked)} board(s) identical to what flash would write: firmware "
            f"{firmware_version(root)} and the configs {net.name} generates"
        )
    return 1 if differ else 0
