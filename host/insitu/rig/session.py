"""The session with a network's boards: what the host does on the wire, and nothing more.

    rig = Rig(network, [link], configs=board_configs(network))  # insitu.rig.lab
    rig.connect()                     # identify every board, verify firmware and config hash
    rig.tare()                        # forces off, settle, strain offsets := no-load readings
    rig.apply_forces({Port(11, 1): -0.049})
    m = rig.measure("forward", tag=1, settle_ms=1000)
    m.u[Port(13, 1)]                  # displacement reported by board 13's sensor
    rig.update(rule="adjoint", lr=0.5, opt="adam", batch=16)

Requests are frames of ``insitu_node.protocol.codec``. Every request gets one reply per
addressed board with the same seq; a request that times out is sent again with the same seq
and the same frame, so a board that already applied it answers from its reply cache instead
of applying it twice. A broadcast costs one message per link, however many boards hang on it.
The rig never computes per-bond gradients: it moves forces, clamps and phases, and relays what
the boards report. Errors a user can act on are ``RigError`` with a one-line message naming
the board and what is wrong.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from insitu.deploy.nodeconfig import bus_gather_s, bus_listen_s, expected_hash, node_address
from insitu.links.base import Link
from insitu.network.schema import Board, Network, Port
from insitu_node import VERSION as FIRMWARE_VERSION
from insitu_node.hal.bus import QUIET
from insitu_node.protocol import codec
from insitu_node.protocol.messages import REQUIRED, SCHEMA, measure_deadline_ms

log = logging.getLogger(__name__)

BROADCAST = codec.BROADCAST


class RigError(RuntimeError):
    """A board is missing, refused a request, or is not the board the network file expects."""


class Refused(RigError):
    """A board answered a request with an error reply: the request's value was out of its
    range or its state forbids it (``field`` and ``reason`` are the board's words)."""


class RequestError(ValueError):
    """A request the firmware's schema (insitu_node.protocol.messages) does not have: an
    unknown op, a misspelt or missing argument. A bug on the host, found before sending."""


def checked_request(op: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` for ``op`` checked against the firmware's request schema by name (the node
    checks the values; the check lives here, not in firmware, whose 64 K heap has no room
    for it): what every request the host sends goes through."""
    schema = SCHEMA.get(op)
    if schema is None:
        raise RequestError(f"request: no op {op!r} (insitu_node.protocol.messages)")
    unknown = [k for k in args if k not in schema]
    if unknown:
        raise RequestError(f"request {op}: argument {unknown[0]!r}: unknown field "
                           f"(takes {', '.join(schema) or 'none'})")  # fmt: skip
    missing = [k for k, spec in schema.items() if spec[3] == REQUIRED and k not in args]
    if missing:
        raise RequestError(f"request {op}: argument {missing[0]!r} is required")
    return dict(args)


class RigReboot(RigError):
    """A board restarted since connect(): what it held in RAM (accumulated samples, forward
    states, forces, clamps, unsaved updates) is gone. ``boards``: their addresses."""

    def __init__(self, message: str, boards: Sequence[str]) -> None:
        super().__init__(message)
        self.boards = list(boards)


@dataclass
class Counters:
    """What the session has cost so far (telemetry for the run log and benchmarks)."""

    sent: int = 0  # lines written, retries included
    retries: int = 0  # lines written again after a timeout (same seq, same frame)
    replies: int = 0  # reply frames accepted
    duplicates: int = 0  # replies already collected (a board answering a retry from cache)
    stale: int = 0  # replies to an older request
    skipped: int = 0  # lines that are not frames (boot banners, REPL noise)
    corrupt: int = 0  # lines that claim to be frames but fail the codec (CRC, fields)
    events: int = 0  # unsolicited frames (boot announcements)
    loadings: int = 0  # physical phases measured (each `measure` broadcast)
    rig_ms: int = 0  # rig time so far, on the boards' own clock (Rig.mark_time)
    by_op: dict[str, int] = field(default_factory=dict)  # requests by op (first sends)

    def snapshot(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["by_op"] = dict(self.by_op)
        return d


@dataclass(frozen=True)
class BoardInfo:
    """What a board said about itself in reply to `identify`."""

    board: Board
    address: str
    link: int  # index into Rig.links
    uid: str
    firmware: str
    config_hash: str
    boots: int
    persist: str
    step: int | None = None  # checkpoint of the state the board runs (save/load step=)
    reset: str | None = None  # why the board last started (wdt, pwron, ...), if it can tell
    calibration: int | None = None  # id of the calibration the node holds (op cal), or None


@dataclass
class Measurement:
    """One measured phase: displacements from the boards that have sensors, optionally e."""

    phase: str
    tag: int
    u: dict[Port, float]
    e: np.ndarray | None = None  # per bond (network order), only if requested with v=True
    count: int | None = None  # samples accumulated on the nodes (second phases)

    def outputs(self, ports: Sequence[Port]) -> np.ndarray:
        """Displacements at `ports`, in that order (each must have a sensor)."""
        try:
            return np.array([self.u[p] for p in ports], dtype=float)
        except KeyError as exc:
            raise RigError(f"no displacement reading at {exc.args[0]}") from None


@dataclass(frozen=True)
class UpdateSummary:
    max_dk: float  # largest stiffness change on any bond, N/m
    frozen: int  # bonds held at a bound, summed over boards
    count: int  # samples the step averaged


@dataclass
class _Wire:
    link: Link
    seq: int
    boards: set[str] = field(default_factory=set)  # addresses answering on this link
    bus: bool = False  # a shared line whose boards keep quiet requests' ok replies to themselves
    quiet: deque[int] = field(default_factory=lambda: deque(maxlen=16))  # recent quiet seqs

    def listen_s(self, slots: int) -> float:
        """How long silence after a quiet request must last to mean consent: the link's own
        figure (an emulated bus knows its timing), else the deployed boards' (nodeconfig) for
        ``slots`` reply slots (numbered on the network: the last one waits longest)."""
        own = getattr(self.link, "listen_s", None)
        return float(own) if own is not None else bus_listen_s(slots)


class Rig:
    """A network's boards over one or more links.

    ``configs`` (board id → config dict) is what each board must be running; ``connect()``
    compares its hash with what each board reports. ``timeout`` is the reply timeout in
    seconds for immediate replies (measurements add their settle and sampling time),
    ``retries`` how often a request is sent again before the rig gives up.
    """

    def __init__(
        self,
        network: Network,
        links: Link | Sequence[Link],
        configs: Mapping[int, dict] | None = None,
        timeout: float = 1.0,
        retries: int = 3,
        seq_start: int | None = None,
    ) -> None:
        self.network = network
        links = [links] if not isinstance(links, Sequence) else list(links)
        if not links:
            raise RigError("no links to boards")
        if seq_start is None:  # a restarted host must not reuse a (seq, frame) a node cached
            seq_start = random.SystemRandom().randrange(1, codec.MAX_SEQ // 2)
        self._wires = [_Wire(ln, seq_start, bus=bool(getattr(ln, "bus", False))) for ln in links]
        self.configs = dict(configs) if configs is not None else None
        self.timeout = timeout
        self.retries = retries
        self.counters = Counters()
        self.boards: dict[str, BoardInfo] = {}
        self.events: list[tuple[str, dict]] = []
        self._by_addr = {node_address(bd): bd for bd in network.boards}
        self._forces_on: set[Port] = set()
        self.held: dict[str, list[int]] = {}  # address → bond slots frozen for a sensor fault
        self._clock: tuple[str, int] | None = None  # (board, its ticks_ms) at the last mark
        self._late: list[tuple[str, codec.Frame]] = []  # quiet requests' errors heard later
        self._late_busy: set[str] = set()  # boards whose "still busy" came after listen_s
        self._awaiting = False  # in _await_idle, where a late "busy" is just more waiting
        self._boots_seen = 0  # events already checked for boot announcements (bus)

    @property
    def links(self) -> list[Link]:
        return [w.link for w in self._wires]

    def close(self) -> None:
        for w in self._wires:
            w.link.close()

    # ------------------------------------------------------------------ the wire

    def _next_seq(self, w: _Wire) -> int:
        w.seq = w.seq + 1 if w.seq < codec.MAX_SEQ else 1
        return w.seq

    def _send(self, w: _Wire, line: str) -> None:
        w.link.send(line)
        self.counters.sent += 1

    def _exchange(
        self,
        sends: list[tuple[_Wire, str, Iterable[str]]],
        op: str,
        args: dict[str, Any],
        timeout: float,
        quiet: bool = False,
    ) -> dict[str, codec.Frame]:
        """Send one frame per (wire, address) and collect one reply from each expected board.

        ``quiet`` on a bus wire: the frame is marked quiet (docs/protocol.md, "Bus"), the
        expected boards are only those that have something to say, and after them the rig
        listens ``listen_s`` for any other board's error; silence is consent."""
        args = checked_request(op, args)  # before anything is on the wire
        self.counters.by_op[op] = self.counters.by_op.get(op, 0) + 1
        jobs = []
        for w, addr, expect in sends:
            seq = self._next_seq(w)
            line = codec.encode(seq, addr, op, args)
            hush = quiet and w.bus
            if hush:
                line = QUIET + line
                w.quiet.append(seq)
            self._send(w, line)
            jobs.append((w, seq, line, set(expect), hush))
        got: dict[str, codec.Frame] = {}
        for w, seq, line, expect, hush in jobs:
            wait = timeout
            if w.bus and not hush:  # every board answers, one after another on the line
                wait += bus_gather_s(len(expect))
            for attempt in range(self.retries + 1):
                if attempt:
                    self._send(w, line)
                    self.counters.retries += 1
                    silent = ", ".join(self._name(a) for a in sorted(expect - got.keys(),
                                                                     key=_addr_key))  # fmt: skip
                    log.info("%s: no reply from %s, sent again (attempt %d of %d)", op, silent,
                             attempt + 1, self.retries + 1)  # fmt: skip
                self._collect(w, seq, expect, got, wait, hush)
                if expect <= got.keys():
                    break
            missing = sorted(expect - got.keys(), key=_addr_key)
            if missing:
                who = ", ".join(self._name(a) for a in missing)
                raise RigError(
                    f"no reply to {op} from {who} after {self.retries + 1} attempts "
                    f"on {getattr(w.link, 'name', 'link')}{self._noise()}"
                )
            if hush:  # the boards with nothing to say: silence for listen_s means consent
                self._collect(w, seq, set(), got, w.listen_s(len(self._by_addr)), hush,
                              listen=True)  # fmt: skip
        return got

    def _collect(
        self,
        w: _Wire,
        seq: int,
        expect: set[str],
        got: dict[str, codec.Frame],
        timeout: float,
        quiet: bool = False,
        listen: bool = False,
    ) -> None:
        """Collect replies with ``seq`` until every board in ``expect`` answered or ``timeout``
        has passed (``listen``: until it has passed, whatever came). ``quiet``: any board of
        the wire may speak (a refusal, a busy board), not only the expected ones."""
        # the link's own clock (virtual links count virtual seconds), so a chatty or noisy
        # link cannot keep the rig here past the timeout
        now = getattr(w.link, "now", time.monotonic)
        deadline = now() + timeout
        while listen or not expect <= got.keys():
            left = deadline - now()
            if left <= 0:
                return
            line = w.link.receive(left)
            if line is None:
                return
            try:
                f = codec.decode(line)
            except codec.NotFrame:
                self.counters.skipped += 1
                continue
            except codec.FrameError:
                self.counters.corrupt += 1
                continue
            if f.op == "evt":
                self.counters.events += 1
                self.events.append((f.addr, f.args))
            elif f.op not in ("ok", "err"):
                self.counters.skipped += 1  # a request echoed back (a loopback, a REPL)
            elif f.seq != seq:
                if f.op == "err" and f.seq in w.quiet:  # a quiet request refused late
                    self._late.append((f.addr, f))
                elif f.seq in w.quiet and f.args.get("busy") is True:  # a late "still busy"
                    self._late_busy.add(f.addr)
                self.counters.stale += 1
            elif f.addr in got:
                self.counters.duplicates += 1
            elif f.addr in expect or (quiet and f.addr in w.boards):
                got[f.addr] = f
                self.counters.replies += 1
            else:
                self.counters.stale += 1

    def _noise(self) -> str:
        """What a missing reply's error adds when the link carried garbage."""
        c = self.counters
        if not (c.corrupt or (self.on_bus and c.skipped)):
            return ""
        what = f"{c.corrupt} corrupt" + (f" and {c.skipped} unreadable" if self.on_bus else "")
        return f"; {what} lines so far (noise, a collision or a babbling board)"

    def _check(self, op: str, replies: Mapping[str, codec.Frame]) -> None:
        if self._late:  # an earlier quiet request's refusal, heard while waiting for this one
            addr, f = self._late.pop(0)
            self._late.clear()
            field_, reason = f.args.get("field", "?"), f.args.get("reason", "?")
            raise Refused(f"{self._name(addr)} refused an earlier quiet request: {field_}: "
                          f"{reason}")  # fmt: skip
        if self._late_busy and not self._awaiting:  # the rig moved on while a board measured
            who = ", ".join(self._name(a) for a in sorted(self._late_busy, key=_addr_key))
            self._late_busy.clear()
            raise RigError(f"{who} still measuring after the rig moved on (its reply came "
                           "after the bus's listen time): lengthen the listen time")  # fmt: skip
        for addr in sorted(replies, key=_addr_key):
            f = replies[addr]
            if f.op == "err":
                field_, reason = f.args.get("field", "?"), f.args.get("reason", "?")
                raise Refused(f"{self._name(addr)} refused {op}: {field_}: {reason}")

    def _name(self, addr: str) -> str:
        bd = self._by_addr.get(addr)
        return f"board {addr}" if bd is None else f"board {bd.id} (node {bd.node})"

    def request(
        self,
        board: Board | int,
        op: str,
        args: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One request to one board; its `ok` payload (an `err` raises RigError)."""
        bd = self._board(board)
        addr = node_address(bd)
        info = self.boards.get(addr)
        if info is None:
            raise RigError(f"{self._name(addr)} is not connected (call connect() first)")
        w = self._wires[info.link]
        got = self._exchange([(w, addr, [addr])], op, args or {}, timeout or self.timeout)
        self._check(op, got)
        return got[addr].args

    def broadcast(
        self,
        op: str,
        args: dict[str, Any] | None = None,
        timeout: float | None = None,
        speakers: set[str] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """One frame per link to every board; address → `ok` payload. Any `err` raises.

        ``speakers``: on a bus, send it quiet and wait only for these boards' replies (plus
        any board that has something to say: docs/protocol.md, "Bus"); links that are not
        buses still collect every board's reply."""
        if not self.boards:
            raise RigError("no boards connected (call connect() first)")
        quiet = speakers is not None
        sends = [(w, BROADCAST, (w.boards & speakers) if quiet and w.bus else w.boards)
                 for w in self._wires if w.boards]  # fmt: skip
        got = self._exchange(sends, op, args or {}, timeout or self.timeout, quiet)
        self._check(op, got)
        if quiet:
            self._check_boot_events(op)
        return {a: f.args for a, f in got.items()}

    @property
    def on_bus(self) -> bool:
        """Whether any of the rig's links is a shared bus (quiet phases)."""
        return any(w.bus for w in self._wires)

    def _sensor_boards(self) -> set[str]:
        return {a for a, i in self.boards.items() if "displacement" in i.board.carries}

    def _await_idle(self, op: str, limit_s: float) -> None:
        """On a bus, after the boards that report a phase have replied: ask quietly (``ping``,
        answered only by boards still busy) until no board is busy, so the next phase's
        forces cannot land in a board's measurement; waiting longer each time it is asked."""
        if not any(w.bus and w.boards - self._sensor_boards() for w in self._wires):
            return
        self._awaiting = True
        try:
            self._poll_idle(op, limit_s)
        finally:
            self._awaiting = False

    def _poll_idle(self, op: str, limit_s: float) -> None:
        grace = 0.02
        waited = 0.0
        while True:
            busy = [a for a, p in self.broadcast("ping", speakers=set()).items() if p.get("busy")]
            busy += list(self._late_busy)  # an earlier ping's answer, heard late
            self._late_busy.clear()
            if not busy:
                return
            if waited > limit_s:
                who = ", ".join(self._name(a) for a in sorted(busy, key=_addr_key)[:3])
                raise RigError(f"{op}: {who} still busy {waited:.1f} s after the phase's "
                               "reports")  # fmt: skip
            for w in self._wires:  # listen meanwhile (virtual links let their time pass)
                if w.bus:
                    self._collect(w, 0, set(), {}, grace, listen=True)
            waited += grace
            grace = min(2 * grace, 0.5)

    def _check_boot_events(self, op: str) -> None:
        """On a bus a rebooted board is heard by its boot announcement, not by a reply."""
        new = self.events[self._boots_seen:]
        self._boots_seen = len(self.events)
        moved = sorted({a for a, ev in new if ev.get("ev") == "boot" and a in self.boards},
                       key=_addr_key)  # fmt: skip
        if moved:
            who = ", ".join(self._name(a) for a in moved)
            log.warning("%s restarted (announced a boot) before %s", who, op)
            raise RigReboot(f"{who} restarted (announced a boot) before {op}", moved)

    def _board(self, board: Board | int) -> Board:
        if isinstance(board, Board):
            return board
        for bd in self.network.boards:
            if bd.id == board:
                return bd
        raise RigError(f"network {self.network.name} has no board {board}")

    # ------------------------------------------------------------------ discovery

    def connect(self) -> dict[str, BoardInfo]:
        """Identify every board on every link and check it against the network file.

        Refuses (RigError, one line) on a missing board, a board the network does not have,
        another firmware or protocol version, a board reporting a bad config, or a config hash
        that differs from the one generated from the network file.
        """
        found = self._discover()
        unknown = sorted(set(found) - set(self._by_addr), key=_addr_key)
        if unknown:
            raise RigError(
                f"board {unknown[0]} answered but network {self.network.name} has no such board"
            )
        missing = sorted(set(self._by_addr) - set(found), key=_addr_key)
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise RigError(f"{self._name(missing[0])} did not answer identify{more}"
                           f"{self._noise()}")  # fmt: skip
        infos = {}
        for addr in sorted(found, key=_addr_key):
            i, f = found[addr]
            infos[addr] = self._verify(addr, i, f)
        self.boards = infos
        self._boots_seen = len(self.events)  # boards announce their boot before connect
        for w in self._wires:
            w.boards = set()
        for addr, info in infos.items():
            self._wires[info.link].boards.add(addr)
        return infos

    def _discover(self) -> dict[str, tuple[int, codec.Frame]]:
        """Broadcast identify on every link at once and listen to all of them together.

        Which board sits on which link is what we are finding out, so no link can be waited
        on for a given board: poll every link in turn until every expected board has
        answered, asking again (same frame) on each retry period.
        """
        found: dict[str, tuple[int, codec.Frame]] = {}
        seqs = []
        for w in self._wires:
            seq = self._next_seq(w)
            seqs.append(seq)
            self._send(w, codec.encode(seq, BROADCAST, "identify", {}))
        self.counters.by_op["identify"] = self.counters.by_op.get("identify", 0) + 1
        expect = set(self._by_addr)
        for attempt in range(self.retries + 1):
            if attempt:
                for w, seq in zip(self._wires, seqs, strict=True):
                    self._send(w, codec.encode(seq, BROADCAST, "identify", {}))
                    self.counters.retries += 1
            gather = max((bus_gather_s(len(expect)) for w in self._wires if w.bus), default=0.0)
            deadline = time.monotonic() + self.timeout + gather
            while time.monotonic() < deadline and not expect <= found.keys():
                quiet = True
                for i, w in enumerate(self._wires):
                    line = w.link.receive(0.01)
                    if line is None:
                        continue
                    quiet = False
                    f = self._frame(line)
                    if f is None:
                        continue
                    if f.op in ("ok", "err") and f.seq == seqs[i]:
                        if f.addr in found and found[f.addr][0] != i:
                            raise RigError(
                                f"{self._name(f.addr)} answers on two links: "
                                f"{getattr(self._wires[found[f.addr][0]].link, 'name', '?')} "
                                f"and {getattr(w.link, 'name', '?')}"
                            )
                        if f.addr not in found:
                            found[f.addr] = (i, f)
                            self.counters.replies += 1
                if quiet and all(getattr(w.link, "virtual", False) for w in self._wires):
                    break  # emulated links: nothing more can come without time passing
            if expect <= found.keys():
                break
        return found

    def _frame(self, line: str) -> codec.Frame | None:
        """Decode a received line, counting what is not a reply; events are logged."""
        try:
            f = codec.decode(line)
        except codec.NotFrame:
            self.counters.skipped += 1
            return None
        except codec.FrameError:
            self.counters.corrupt += 1
            return None
        if f.op == "evt":
            self.counters.events += 1
            self.events.append((f.addr, f.args))
            return None
        return f

    def _verify(self, addr: str, link: int, f: codec.Frame) -> BoardInfo:
        bd = self._by_addr[addr]
        name = self._name(addr)
        a = f.args
        if f.op == "err":
            raise RigError(f"{name} refused identify: {a.get('field')}: {a.get('reason')}")
        if a.get("proto") != codec.VERSION:
            raise RigError(f"{name} speaks protocol {a.get('proto')}, host speaks {codec.VERSION}")
        if a.get("fw") != FIRMWARE_VERSION:
            raise RigError(
                f"{name} runs firmware {a.get('fw')}, expected {FIRMWARE_VERSION} "
                "(flash it with insitu flash)"
            )
        if a.get("cfg_err"):
            raise RigError(f"{name} has an invalid config.json: {a['cfg_err']}")
        ids = self.network.node_ids
        bonds = [[ids[self.network.bonds[b, 0]], ids[self.network.bonds[b, 1]]] for b in bd.bonds]
        if a.get("bonds") != bonds:
            raise RigError(
                f"{name} owns bonds {a.get('bonds')}, network {self.network.name} says {bonds}"
            )
        if self.configs is not None:
            want = expected_hash(self.configs[bd.id])
            if a.get("cfg") != want:
                raise RigError(
                    f"{name} runs config {a.get('cfg')}, network {self.network.name} "
                    f"generates {want} (deploy the config with insitu flash)"
                )
        return BoardInfo(
            board=bd,
            address=addr,
            link=link,
            uid=str(a.get("uid")),
            firmware=str(a.get("fw")),
            config_hash=str(a.get("cfg")),
            boots=int(a.get("boots", 0)),
            persist=str(a.get("persist")),
            step=a.get("step"),
            reset=None if a.get("reset") is None else str(a.get("reset")),
            calibration=None if a.get("cal") is None else int(a["cal"]),
        )

    # ------------------------------------------------------------------ actuation

    def _port_board(self, port: Port, carries: str) -> Board:
        bd = self.network.board_of_node(port.node)
        if bd is None or carries not in bd.carries:
            raise RigError(f"no board with a {carries} actuator/sensor at node {port.node}")
        return bd

    def forces_off(self) -> None:
        """Every force actuator off (one broadcast per link)."""
        self.broadcast("force", {"off": True})
        self._forces_on.clear()

    def apply_forces(self, forces: Mapping[Port, float]) -> None:
        """Set these forces (newtons); every force this rig had on elsewhere goes off.

        Costs one message per port set or switched off — the inputs and outputs, never the
        bonds. Call ``forces_off()`` once first to put an unknown bench in a known state.
        """
        for port in list(self._forces_on):
            if port not in forces:
                bd = self._port_board(port, "force")
                self.request(bd, "force", {"axis": port.axis, "f": 0.0})
                self._forces_on.discard(port)
        for port, f in forces.items():
            bd = self._port_board(port, "force")
            self.request(bd, "force", {"axis": port.axis, "f": float(f)})
            if f != 0.0:
                self._forces_on.add(port)
            else:
                self._forces_on.discard(port)

    def clamp(self, port: Port, u: float | None = None) -> None:
        """Hold a DOF at u metres (None: where it is now)."""
        bd = self._port_board(port, "clamp")
        args: dict[str, Any] = {"axis": port.axis}
        if u is not None:
            args["u"] = float(u)
        self.request(bd, "clamp", args)

    def release(self, port: Port | None = None) -> None:
        """Free one clamped DOF, or every clamp (one broadcast per link)."""
        if port is None:
            self.broadcast("release")
        else:
            self.request(self._port_board(port, "clamp"), "release", {"axis": port.axis})

    def set_stiffness(self, k: np.ndarray) -> None:
        """Command every bond's stiffness (network bond order; one message per board)."""
        k = np.asarray(k, dtype=float)
        if k.shape != (self.network.n_bonds,):
            raise RigError(f"need {self.network.n_bonds} stiffness values, got {k.shape}")
        for info in self.boards.values():
            if info.board.bonds:
                self.request(info.board, "set", {"k": [float(k[b]) for b in info.board.bonds]})

    # ------------------------------------------------------------------ phases

    def measure(
        self,
        phase: str,
        tag: int = 0,
        settle_ms: int = 0,
        n: int = 1,
        scale: float | None = None,
        eta: float | None = None,
        eps: float | None = None,
        v: bool = False,
        calm: int = 0,
    ) -> Measurement:
        """Broadcast one measurement phase and wait for every board's (deferred) reply.
        ``calm`` > 0: each node starts sampling as soon as its gauges have settled to within
        ``calm`` counts per 200 ms window, ``settle_ms`` being the cap (docs/protocol.md)."""
        args: dict[str, Any] = {"phase": phase, "tag": int(tag), "n": int(n)}
        if settle_ms:
            args["settle_ms"] = int(settle_ms)
        if calm:
            args["calm"] = int(calm)
        for key, val in (("scale", scale), ("eta", eta), ("eps", eps)):
            if val is not None:
                args[key] = float(val)
        if v:
            args["v"] = True
        # the node gives up after its settle and its deadline and says so; wait a little longer
        timeout = self.timeout + (settle_ms + measure_deadline_ms(n)) / 1000.0
        # on a bus only the boards with displacement sensors report (all of them with v)
        speak = (set(self.boards) if v else self._sensor_boards()) if self.on_bus else None
        replies = self.broadcast("measure", args, timeout=timeout, speakers=speak)
        if speak is not None:
            self._await_idle("measure", timeout)
        self.counters.loadings += 1
        u: dict[Port, float] = {}
        e = np.full(self.network.n_bonds, np.nan) if v else None
        count = None
        for addr, p in replies.items():
            bd = self.boards[addr].board
            for axis, val in enumerate(p.get("u", ())):
                u[Port(bd.node, axis)] = float(val)
            if e is not None:
                for slot, val in enumerate(p.get("e", ())):
                    e[bd.bonds[slot]] = float(val)
            if "count" in p:
                count = int(p["count"])
        return Measurement(phase, int(tag), u, e, count)

    def update(
        self,
        rule: str = "adjoint",
        lr: float = 1.0,
        opt: str = "sgd",
        batch: int | None = None,
        **hyper: float,
    ) -> UpdateSummary:
        """Every node takes its own optimiser step on what it accumulated (one broadcast)."""
        args: dict[str, Any] = {"rule": rule, "lr": float(lr), "opt": opt}
        if batch is not None:
            args["batch"] = int(batch)
        args.update({k: float(v) for k, v in hyper.items()})
        # on a bus only a board that refuses answers: the step's largest |dk| and bound count
        # are not gathered (NaN, 0; `state` reads them), and held bonds come by fault events
        replies = self.broadcast("update", args, speakers=set() if self.on_bus else None)
        self._check_boots("update", replies)
        for addr, p in replies.items():
            if p.get("held"):
                self.held[addr] = [int(s) for s in p["held"]]
        if not replies:
            return UpdateSummary(max_dk=float("nan"), frozen=0, count=int(batch or 0))
        return UpdateSummary(
            max_dk=max(float(p.get("max_dk", "nan")) for p in replies.values())
            if len(replies) == len(self.boards) else float("nan"),
            frozen=sum(int(p.get("frozen", 0)) for p in replies.values()),
            count=max(int(p.get("count", 0)) for p in replies.values()),
        )

    def check_element(
        self,
        bond: int,
        settle_ms: int = 0,
        n: int = 4,
        k: float | None = None,
        rel: float | None = None,
        e_min: float | None = None,
    ) -> dict[str, Any]:
        """Response check of one bond's stiffness element under the load the rig holds now:
        its board measures the bond, commands probe stiffness ``k`` (None: the farther bound),
        measures again, puts the element back and judges (``verdict`` ok | stuck | unloaded;
        a stuck element is latched as a fault and its bond frozen). Checks are sequential: a
        change of one bond's stiffness moves every other bond."""
        b = int(bond)
        bd = next((x for x in self.network.boards if b in x.bonds), None)
        if bd is None:
            raise RigError(f"network {self.network.name} has no board owning bond {bond}")
        args: dict[str, Any] = {"slot": bd.bonds.index(b), "n": int(n)}
        if settle_ms:
            args["settle_ms"] = int(settle_ms)
        for key, val in (("k", k), ("rel", rel), ("e_min", e_min)):
            if val is not None:
                args[key] = float(val)
        # two settles and two samplings; the node gives up after settle + its deadline each
        timeout = self.timeout + 2 * (settle_ms + measure_deadline_ms(n)) / 1000.0
        reply = self.request(bd, "check", args, timeout=timeout)
        self.counters.loadings += 2
        return reply

    def reset(self, opt: bool = False, k: bool = False) -> None:
        """Forget accumulated samples and stored forward states (and moments, stiffness)."""
        self.broadcast("reset", {"opt": opt, "k": k})

    def tare(self, settle_ms: int = 0, n: int = 1) -> None:
        """Zero the strain channels: forces off, clamps released, settle, tare, forget."""
        self.forces_off()
        self.release()
        self.measure("forward", tag=0, settle_ms=settle_ms, n=n)
        self.broadcast("configure", {"tare": True})
        self.reset()

    def save(self, step: int | None = None) -> None:
        """Every node persists its stiffness, calibration and optimiser state to flash, as
        checkpoint ``step`` (a node keeps this one and the previous one). RigReboot if a board
        restarted since connect(): its checkpoint may be older than the others'."""
        replies = self.broadcast("save", {} if step is None else {"step": int(step)})
        self._check_boots("save", replies)

    def load(self, step: int) -> None:
        """Every node goes back to its saved checkpoint ``step`` (forces off, clamps released,
        accumulators and forward states cleared)."""
        self.broadcast("load", {"step": int(step)})
        self._forces_on.clear()

    def recover(self, step: int | None) -> list[str]:
        """After a reboot or a lost exchange: ask every board its boot count (one ping
        broadcast; short replies, so it gets through a noisy link), roll every board back to
        checkpoint ``step`` (None: just clear what was in flight) and put forces and clamps in
        a known state. Returns the addresses that had rebooted (their boot counts are taken
        as the new reference)."""
        rebooted = []
        self._late.clear()
        self._late_busy.clear()
        for addr, p in self.broadcast("ping").items():
            info = self.boards[addr]
            boots = int(p.get("boots", info.boots))
            if boots != info.boots:
                self.boards[addr] = replace(info, boots=boots)
                rebooted.append(addr)
        if step is not None:
            self.load(step)
        else:
            self.reset()
        self.forces_off()
        self.release()
        self._boots_seen = len(self.events)
        return rebooted

    def check_boots(self) -> None:
        """One ping broadcast: RigReboot if any board restarted since connect()."""
        replies = self.broadcast("ping")
        self._tick(replies)
        self._check_boots("ping", replies)

    def mark_time(self) -> float:
        """Read the boards' clock (one ping broadcast) and return the rig time so far, in
        seconds: what the rig itself spent — settling, sampling, the wire — as one board's
        ticks_ms counts it, whatever the boards are (a bench, MicroPython processes, virtual-
        time emulated boards). Mark at least every few days: ticks wrap at 2**30 ms."""
        self._tick(self.broadcast("ping"))
        return self.counters.rig_ms / 1000.0

    @property
    def rig_seconds(self) -> float:
        """Rig time between the first and the last ``mark_time`` (or ``check_boots``)."""
        return self.counters.rig_ms / 1000.0

    def _tick(self, replies: Mapping[str, Mapping[str, Any]]) -> None:
        # always the same board's clock: boards' clocks are not synchronised
        if self._clock is None:
            stamped = sorted((a for a, p in replies.items() if "t" in p), key=_addr_key)
            if stamped:
                self._clock = (stamped[0], int(replies[stamped[0]]["t"]))
            return
        addr, last = self._clock
        p = replies.get(addr)
        if p is None or "t" not in p:
            return
        now = int(p["t"])
        # signed difference of wrapped ticks (2**30 ms period), as a board computes it; a
        # board that restarted counts from 0 again: re-anchor, count nothing
        d = (now - last + (1 << 29)) % (1 << 30) - (1 << 29)
        if d > 0:
            self.counters.rig_ms += d
        self._clock = (addr, now)

    def _check_boots(self, op: str, replies: Mapping[str, Mapping[str, Any]]) -> None:
        moved = [
            a
            for a, p in replies.items()
            if "boots" in p and a in self.boards and int(p["boots"]) != self.boards[a].boots
        ]
        if moved:
            who = ", ".join(self._name(a) for a in sorted(moved, key=_addr_key))
            log.warning("%s restarted (boot count changed) before %s", who, op)
            raise RigReboot(f"{who} restarted (boot count changed) before {op}", moved)

    def fault_report(self) -> list[str]:
        """One line per sensor fault the boards reported (events) and bond frozen (update
        replies), naming board, node and bond: what the user is told."""
        ids = self.network.node_ids
        lines = []
        seen = set()
        for addr, ev in self.events:
            if ev.get("ev") != "fault" or (addr, ev.get("ch")) in seen:
                continue
            seen.add((addr, ev.get("ch")))
            what = (
                f"bond {ev['bond'][0]}-{ev['bond'][1]}"
                if "bond" in ev
                else f"displacement axis {ev.get('axis')}"
            )
            kind = ev.get("kind")
            fault = "stiffness element does not respond" if kind == "element" else f"sensor {kind}"
            lines.append(f"{self._name(addr)}: {what}: {fault}")
        for addr, slots in sorted(self.held.items(), key=lambda x: _addr_key(x[0])):
            bd = self._by_addr.get(addr)
            if bd is None:
                continue
            for slot in slots:
                b = bd.bonds[slot]
                i, j = ids[self.network.bonds[b, 0]], ids[self.network.bonds[b, 1]]
                lines.append(f"{self._name(addr)}: bond {i}-{j} (#{b}) frozen, no more updates")
        return lines

    # ------------------------------------------------------------------ reading back

    def state(self, only: str | None = None) -> dict[str, dict[str, Any]]:
        """Every board's `state` payload (one request per board: diagnostics, not a step);
        ``only``: just that key (a reply of tens of bytes instead of ~1 KB)."""
        args = {} if only is None else {"only": only}
        return {addr: self.request(info.board, "state", args) for addr, info in self.boards.items()}

    def _per_bond(self, states: Mapping[str, dict[str, Any]], key: str) -> np.ndarray:
        out = np.full(self.network.n_bonds, np.nan)
        for addr, st in states.items():
            bd = self.boards[addr].board
            for slot, val in enumerate(st.get(key, ())):
                out[bd.bonds[slot]] = float(val)
        return out

    def stiffness(self, states: Mapping[str, dict[str, Any]] | None = None) -> np.ndarray:
        """Commanded stiffness per bond (network order), as the boards report it."""
        return self._per_bond(self.state("k") if states is None else states, "k")

    def realised_stiffness(self, states: Mapping[str, dict[str, Any]] | None = None) -> np.ndarray:
        """Realised stiffness per bond (network order): what each node's element realises for
        the command it sent, through the node's calibrated map (``state`` key ``kr``)."""
        return self._per_bond(self.state("kr") if states is None else states, "kr")

    def uncalibrated(self) -> list[str]:
        """The connected boards that hold no calibration (identify ``cal`` null)."""
        return [self._name(a) for a, i in sorted(self.boards.items()) if i.calibration is None]

    def accumulated(
        self, states: Mapping[str, dict[str, Any]] | None = None
    ) -> tuple[np.ndarray, int]:
        """(Σ over samples of each bond's accumulated product, sample count) as reported."""
        states = self.state() if states is None else states
        counts = {int(st.get("count", 0)) for st in states.values() if st.get("g")}
        if len(counts) > 1:
            raise RigError(f"boards disagree on the accumulated sample count: {sorted(counts)}")
        return self._per_bond(states, "g"), (counts.pop() if counts else 0)


def _addr_key(addr: str) -> tuple[int, str]:
    return (int(addr), "") if addr.isdigit() else (1 << 30, addr)
