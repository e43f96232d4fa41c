"""`insitu ports`: serial ports and the board on each, by the unique id it reports.

    insitu ports                                   every port the OS lists, and the ptys
                                                   of running `insitu emulate` labs
    insitu ports --port socket://lab:7000          plus these URLs
    insitu ports --network NET.toml [--map UID=3]  which network board each port is

Each port gets one broadcast ``identify`` (short timeout, a few attempts); a board running the
firmware answers with its node id, unique id, firmware version and config hash and carries on.
Ports that do not answer are listed as such (no firmware, another program, not a board).
Nothing is written to a board and nothing running is interrupted. Boards are matched to the
network by unique id (the network file's ``unique_id`` or ``--map``), never by port order.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from insitu.cli.args import number

HELP = "list serial ports with the unique id and node id of the board on each"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="URL",
        help="also ask this port (device path, socket://, rfc2217://)",
    )
    p.add_argument(
        "--only", action="store_true", help="ask only the --port URLs, not the ports the OS lists"
    )
    p.add_argument("--network", metavar="FILE", help="mark which network board each port is")
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="UID=BOARD",
        help="unique id = board id, over the network file's unique_id fields",
    )
    p.add_argument(
        "--timeout",
        type=number(0.0, 600.0),
        default=0.4,
        metavar="S",
        help="seconds per identify attempt (default: 0.4; 3 attempts)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError
    from insitu.deploy.discovery import (
        DiscoveryError,
        describe,
        identify_ports,
        list_serial_ports,
        parse_map,
        published_labs,
        uid_table,
    )
    from insitu_node import VERSION

    try:
        mapping = parse_map(args.map)
        net = None
        table: dict[str, Any] = {}
        if args.network:
            from insitu.network.schema import load_network

            net = load_network(args.network)
            table = uid_table(net, mapping)
        elif mapping:
            raise UserError("--map needs --network")
    except DiscoveryError as exc:
        raise UserError(str(exc)) from None

    listed = [] if args.only else list_serial_ports()
    if not args.only:  # ptys are not in the OS's list: the emulators publish theirs
        for lab in published_labs():
            listed += [(p, f"insitu emulate (pid {lab['pid']}, {lab['network']})")
                       for p in lab["ports"].values()]  # fmt: skip
    names = {d for d, _ in listed}
    ports = listed + [(u, "given") for u in dict.fromkeys(args.port) if u not in names]
    reports = identify_ports(ports, timeout=args.timeout, expect=None)
    for rep in reports:
        if rep.error and rep.port in args.port:
            raise UserError(rep.error)

    rows: list[dict[str, Any]] = []
    for rep in reports:
        base = {"port": rep.port, "description": rep.description}
        if rep.error:
            rows.append({**base, "status": f"cannot open: {rep.error}"})
            continue
        if not rep.identities:
            rows.append({**base, "status": "no answer (no insitu firmware running)"})
            continue
        for i in rep.identities:
            row = {
                **base,
                "uid": i.uid,
                "node": i.address,
                "firmware": i.firmware,
                "config": i.config_hash,
            }
            status = []
            if i.firmware != VERSION:
                status.append(f"firmware {i.firmware}, host speaks {VERSION}")
            if i.config_error:
                status.append(f"config error: {i.config_error}")
            if net is not None:
                bd = table.get(i.uid)
                if bd is None:
                    status.append(f"unique id not recorded in {net.name}")
                else:
                    row["board"] = bd.id
                    status.insert(0, describe(bd))
                    if i.address != str(bd.id):
                        status.append(f"but it runs node {i.address}'s config")
            row["status"] = "; ".join(status) or "answers"
            rows.append(row)

    hints: list[str] = []
    if net is not None:
        from insitu.resources import editable

        recorded = {bd.id for bd in table.values()}
        for row in rows:
            node = row.get("node")
            if "uid" in row and "board" not in row and node and node.isdigit():
                if int(node) in {b.id for b in net.boards} and int(node) not in recorded:
                    hints.append(
                        f'board {node}: unique_id = "{row["uid"]}"  '
                        f"(in {editable(net.source)}, or --map {row['uid']}={node})"
                    )
        found = {row.get("board") for row in rows}
        absent = [bd for bd in net.boards if bd.id in recorded and bd.id not in found]
        if absent:
            hints.append("not found on any port: " + ", ".join(describe(bd) for bd in absent))

    if args.json:
        print(json.dumps({"ports": rows, "hints": hints}, indent=1))
        return 0
    if not rows:
        print("no serial ports found (pass --port URL)")
        return 0
    w = max(len(r["port"]) for r in rows)
    print(f"{'PORT':<{w}}  {'UNIQUE ID':<24}  {'NODE':<5}  {'FIRMWARE':<8}  {'CONFIG':<8}  STATUS")
    for r in rows:
        print(
            f"{r['port']:<{w}}  {r.get('uid', '-'):<24}  {r.get('node', '-'):<5}  "
            f"{r.get('firmware', '-'):<8}  {r.get('config', '-'):<8}  {r['status']}"
        )
    if hints:
        print("\nrecord the unique ids of boards that run a node's config:", file=sys.stdout)
        for h in hints:
            print(f"  {h}")
    return 0
