"""Which board is on which port: `identify` over the line protocol, unique ids, matching.

Port names are not stable (USB enumeration order, hubs, reboots), so boards are matched to
network boards by the unique id each board reports (RP2040/RP2350: the flash chip's 64-bit
id; ESP32: the MAC; an emulated board: the id its lab gave it), never by port order. A lab
records each board's id once in the network file (``unique_id = "e66141..."`` in the board's
``[hardware]`` entry) or passes ``--map UID=BOARD`` on the command line.

Asking a port who is there costs one broadcast ``identify`` frame per attempt; a board running
the firmware answers with its node id, unique id, firmware version and config hash and goes on
running. Nothing here writes to a board or interrupts it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from insitu.links.base import LinkError
from insitu.network.schema import Board, Network
from insitu_node.protocol import codec

IDENTIFY_TIMEOUT = 0.4  # seconds per attempt; a running node answers in about a millisecond
IDENTIFY_ATTEMPTS = 3


class DiscoveryError(RuntimeError):
    """A port or a unique-id table that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Identity:
    """What one board said in reply to ``identify`` on a port."""

    port: str
    address: str  # its protocol address = the node/board id its config.json gives it
    uid: str  # hardware unique id, lowercase hex
    firmware: str
    config_hash: str
    bonds: list[list[int]]
    cfg_err: str | None = None
    args: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def config_error(self) -> str | None:
        """Why the node rejected its config.json ("field: reason"; the firmware leaves the
        field empty for a missing file), or None when it runs its config."""
        if not self.cfg_err:
            return None
        return self.cfg_err[2:] if self.cfg_err.startswith(": ") else self.cfg_err


@dataclass
class PortReport:
    """One port: the boards that answered on it (a bus may carry several), or why none did."""

    port: str
    description: str = ""
    identities: list[Identity] = field(default_factory=list)
    error: str | None = None  # the port could not be opened or broke

    @property
    def answered(self) -> bool:
        return bool(self.identities)


def list_serial_ports() -> list[tuple[str, str]]:
    """(device, description) of the serial ports the OS knows (pyserial ``list_ports``)."""
    from serial.tools import list_ports

    out = []
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        desc = p.description if p.description and p.description != "n/a" else ""
        if p.serial_number:
            desc = f"{desc} (serial {p.serial_number})".strip()
        out.append((p.device, desc))
    return out


def _identity(port: str, f: codec.Frame) -> Identity:
    a = f.args
    return Identity(
        port=port,
        address=str(a.get("id", f.addr)),
        uid=str(a.get("uid", "")).lower(),
        firmware=str(a.get("fw", "?")),
        config_hash=str(a.get("cfg", "?")),
        bonds=[list(b) for b in a.get("bonds", [])],
        cfg_err=a.get("cfg_err"),
        args=dict(a),
    )


def identify_port(
    url: str,
    timeout: float = IDENTIFY_TIMEOUT,
    attempts: int = IDENTIFY_ATTEMPTS,
    description: str = "",
    expect: int | None = 1,
) -> PortReport:
    """Broadcast ``identify`` on one port and collect the answers.

    Stops early once ``expect`` boards answered (None: listen for the full time, for a bus).
    A port that cannot be opened is reported with ``error`` set, not raised.
    """
    from insitu.links.serial_link import SerialLink

    rep = PortReport(url, description)
    try:
        link = SerialLink(url)
    except LinkError as exc:
        rep.error = str(exc)
        return rep
    seq = 1 + (time.monotonic_ns() // 1000) % (codec.MAX_SEQ // 2)
    line = codec.encode(seq, codec.BROADCAST, "identify", {})
    seen: dict[str, Identity] = {}
    try:
        for _ in range(max(1, attempts)):
            link.send(line)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                got = link.receive(max(0.0, deadline - time.monotonic()))
                if got is None:
                    break
                try:
                    f = codec.decode(got)
                except codec.FrameError:
                    continue
                if f.op == "ok" and f.seq == seq and f.addr not in seen:
                    seen[f.addr] = _identity(url, f)
                if expect is not None and len(seen) >= expect:
                    break
            if seen and (expect is None or len(seen) >= expect):
                break
    except LinkError as exc:
        rep.error = str(exc)
    finally:
        link.close()
    rep.identities = sorted(seen.values(), key=lambda i: _addr_key(i.address))
    return rep


def identify_ports(
    urls: Sequence[tuple[str, str]] | Sequence[str],
    timeout: float = IDENTIFY_TIMEOUT,
    attempts: int = IDENTIFY_ATTEMPTS,
    expect: int | None = 1,
) -> list[PortReport]:
    """:func:`identify_port` on every port at once (one thread per port), in the given order."""
    items = [(u, "") if isinstance(u, str) else (u[0], u[1]) for u in urls]
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(32, len(items))) as ex:
        futs = [ex.submit(identify_port, u, timeout, attempts, d, expect) for u, d in items]
        return [f.result() for f in futs]


def parse_map(items: Iterable[str]) -> dict[str, int]:
    """``["e661...=3", ...]`` → {uid: board id}; uids lowercased."""
    out: dict[str, int] = {}
    for item in items:
        uid, sep, bid = item.partition("=")
        uid = uid.strip().lower()
        if not sep or not uid or not bid.strip().isdigit():
            raise DiscoveryError(f"--map {item!r}: expected UID=BOARD (hex id = board id)")
        if not all(c in "0123456789abcdef" for c in uid):
            raise DiscoveryError(f"--map {item!r}: the unique id must be hex")
        out[uid] = int(bid)
    return out


def uid_table(network: Network, mapping: Mapping[str, int] | None = None) -> dict[str, Board]:
    """uid → network board, from the network file's ``unique_id`` fields and ``mapping``.

    An explicit mapping wins over the file for the boards it names. Refuses a mapping to a
    board the network does not have, and one uid given to two boards.
    """
    by_id = {bd.id: bd for bd in network.boards}
    table: dict[str, Board] = {}
    mapped = set((mapping or {}).values())
    for bd in network.boards:
        if bd.unique_id and bd.id not in mapped:
            uid = bd.unique_id.lower()
            if uid in table:
                raise DiscoveryError(
                    f"{network.source}: boards {table[uid].id} and {bd.id} both have "
                    f"unique_id {uid}"
                )
            table[uid] = bd
    for uid, bid in (mapping or {}).items():
        if bid not in by_id:
            known = ", ".join(str(b.id) for b in network.boards)
            raise DiscoveryError(
                f"--map {uid}={bid}: network {network.name} has no board {bid} ({known})"
            )
        if uid in table and table[uid].id != bid:
            raise DiscoveryError(f"unique id {uid} given to boards {table[uid].id} and {bid}")
        table[uid] = by_id[bid]
    return table


def network_bonds(network: Network, board: Board) -> list[list[int]]:
    """The bonds a board owns as the firmware reports them: [[node, node], ...]."""
    ids = network.node_ids
    return [[int(ids[network.bonds[b, 0]]), int(ids[network.bonds[b, 1]])] for b in board.bonds]


def describe(board: Board) -> str:
    return f"board {board.id} (node {board.node})"


def identity_problem(
    ident: Identity,
    network: Network,
    board: Board,
    config_hash: str,
    firmware: str,
) -> str | None:
    """The first way a board differs from what the network file generates, as one phrase."""
    from insitu.deploy.nodeconfig import node_address

    if ident.config_error:
        # first: a node without a valid config identifies as "unconfigured", which says less
        old = f" (and runs firmware {ident.firmware})" if ident.firmware != firmware else ""
        return f"rejects its config.json: {ident.config_error}{old}"
    if ident.address != node_address(board):
        return f"identifies as node {ident.address}, not {node_address(board)}"
    if ident.firmware != firmware:
        return f"runs firmware {ident.firmware}, expected {firmware}"
    want = network_bonds(network, board)
    if ident.bonds != want:
        return f"owns bonds {ident.bonds}, network {network.name} says {want}"
    if ident.config_hash != config_hash:
        return f"runs config {ident.config_hash}, network {network.name} generates {config_hash}"
    return None


def _addr_key(a: str) -> tuple[int, str]:
    return (int(a), "") if a.isdigit() else (1 << 30, a)


# ------------------------------------------------------------------ ports a virtual lab publishes


def published_dir() -> Path:
    """Where running ``insitu emulate`` labs publish their ports: $XDG_RUNTIME_DIR/insitu
    (per user, cleared at logout), else the temp dir's insitu-<uid>."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return Path(base) / "insitu"
    return Path(tempfile.gettempdir()) / f"insitu-{os.getuid()}"


def publish_lab(
    network: str,
    family: str | None,
    ports: Mapping[int, str],
    bus_listen_s: float | None = None,
) -> Path:
    """Announce this process's emulated boards (board id -> port; ``bus_listen_s``: the one
    port is the adapter of a bus they share, and the listen time its boards need); returns
    the file, which the caller removes when its boards stop (a dead process's file is ignored
    anyway)."""
    d = published_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"emulate-{os.getpid()}.json"
    doc = {"pid": os.getpid(), "network": network, "family": family,
           "ports": {str(b): p for b, p in ports.items()},
           "bus_listen_s": bus_listen_s}  # fmt: skip
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)
    return path


def published_labs() -> list[dict[str, Any]]:
    """The labs ``insitu emulate`` processes are running now (files of dead ones skipped)."""
    labs = []
    for path in sorted(published_dir().glob("emulate-*.json")):
        try:
            doc = json.loads(path.read_text())
            os.kill(int(doc["pid"]), 0)  # still running?
        except (OSError, ValueError, KeyError, TypeError):
            continue
        labs.append(doc)
    return labs


class AutoPorts(NamedTuple):
    ports: list[str]
    family: str | None  # what to tell the host (None: as the network file says)
    bus_listen_s: float | None  # the port is a bus's adapter; the listen time its boards need


def auto_ports() -> AutoPorts:
    """What ``--port auto`` means: the ports of the one running ``insitu emulate`` lab.
    DiscoveryError when there is none or more than one (name them with --port then)."""
    labs = published_labs()
    if len(labs) != 1:
        which = ", ".join(f"pid {lab['pid']} ({lab['network']})" for lab in labs)
        raise DiscoveryError(
            "--port auto: no running `insitu emulate` lab (start one, or name the ports)"
            if not labs else f"--port auto: {len(labs)} emulated labs running ({which}); "
            "name the ports with --port"
        )  # fmt: skip
    lab = labs[0]
    ports = [lab["ports"][b] for b in sorted(lab["ports"], key=int)]
    return AutoPorts(ports, lab.get("family"), lab.get("bus_listen_s"))
