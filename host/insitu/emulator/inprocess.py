"""In-process emulated boards: the real firmware node core, hundreds per process.

Every board of a network runs ``insitu_node.node.Node`` — the same code a board runs — on the
emulated HAL, its bus bound to one ``World``. Time is the world's virtual clock: a link's
``receive`` advances it, ticking every node at its control period, until a reply is there.
Idle stretches are skipped in one step (a node's tick only needs to see the time), so an idle
lab costs nothing and a measurement costs its ticks.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from insitu.deploy.nodeconfig import Calibration, node_address, node_config
from insitu.emulator.clock import RealClock, VirtualClock
from insitu.emulator.hardware import Profile, get_profile, servo_table
from insitu.emulator.mp import silicon
from insitu.emulator.world import World
from insitu.hardware.pinmap import BENCH, PinMap, apply_pins, default_pinmap_path, load_pinmap
from insitu.network.schema import Network
from insitu_node import persist
from insitu_node.config import from_dict
from insitu_node.hal import board as hal_board
from insitu_node.hal import emu
from insitu_node.hal.emuhx import EmuHX711
from insitu_node.hal.storage import FileStorage, MemStorage
from insitu_node.node import Node
from insitu_node.protocol import codec

if TYPE_CHECKING:
    from insitu.emulator.bus import InProcessBus


def firmware_profile(profile: str | Profile, pins: bool = False) -> Profile:
    """A profile whose bus speaks the firmware's units (docs/firmware.md, emu bus table).

    Profiles with integer counts (realistic, harsh, miscalibrated) speak the kit's parts on
    either path: a force command is the H-bridge's signed duty (``BENCH.force_cmd_per_n`` per
    newton) and a displacement count is ADCBridge's sum over the DRV5055's ADC
    (``BENCH.disp_adc_m_per_count``), so a board on the bus (hal/emu.py) and one on its pins
    (``pins``: hal/board.py and the real drivers on silicon.py) read and command the same
    numbers. The ideal profile keeps float counts (2^40 force counts per newton, forces exact
    to ~1e-12 N), which pins cannot carry. Clamp targets are displacement-sensor counts.
    """
    prof = get_profile(profile)
    quantised = prof.strain.quantise and prof.disp.quantise
    if pins and not quantised:
        raise ValueError(
            f"profile {prof.name!r} has unquantised (float) sensors: pins carry bits, so "
            "pin-level boards need a profile with integer counts (realistic, harsh)"
        )
    if not quantised:
        return prof.with_(
            nominal=replace(prof.nominal, force_cmd_per_n=float(2**40), clamp_in_counts=True)
        )
    return prof.with_(
        nominal=replace(
            prof.nominal,
            force_cmd_per_n=BENCH.force_cmd_per_n,
            disp_counts_per_m=1.0 / BENCH.disp_adc_m_per_count,
            clamp_in_counts=True,
        )
    )


def load_lab_pinmap(pins: str | None) -> PinMap | None:
    """The pin map an emulated lab's boards are wired by: a family name (hardware/boards/
    NAME.toml) or a TOML path; None for none."""
    if pins is None:
        return None
    return load_pinmap(Path(pins) if pins.endswith(".toml") else default_pinmap_path(pins))


def board_wiring(pm: PinMap, cfg: dict) -> list[dict]:
    """The chips a board of pin map ``pm`` has soldered for a node config (silicon.Silicon's
    ``wiring``), taken from the pin map, not from the config the firmware reads: the firmware
    must find its parts where the kit put them."""
    wiring: list[dict] = []
    for i, b in enumerate(cfg["bonds"]):
        slot = pm.slots[b.get("slot", i)]
        if slot.sensor != "hx711":
            raise ValueError(f"pin map {pm.name}: slot {i} strain sensor {slot.sensor!r}")
        wiring.append({"chip": "hx711", "ch": i, **slot.sensor_pins})
        if b["element"]["type"] == "servo":
            assert slot.servo is not None
            wiring.append({"chip": "servo", "ch": i, **slot.servo})
        else:
            assert slot.coil is not None
            wiring.append({"chip": "hbridge", "device": "coil", "ch": i, **slot.coil})
    for a in cfg["force"]:
        wiring.append({"chip": "hbridge", "device": "force", "ch": a["axis"],
                       **pm.force[a["axis"]]})
    for a in cfg["clamp"]:
        wiring.append({"chip": "brake", "ch": a["axis"], **pm.clamp[a["axis"]]})
    for a in cfg["disp"]:
        d = pm.disp[a["axis"]]
        if d.sensor != "adc":
            raise ValueError(f"pin map {pm.name}: displacement sensor {d.sensor!r}")
        wiring.append({"chip": "drv5055", "ch": a["axis"], **d.pins})
    return wiring


def world_calibration(world: World) -> Calibration:
    """The nominal calibration matching a world's emulated parts (what a lab starts with)."""
    return profile_calibration(world.profile)


def profile_calibration(prof: Profile) -> Calibration:
    """The nominal calibration of a (firmware_profile) profile's parts: it depends on the
    profile alone, so the configs boards must run need no World (rig/lab.board_configs)."""
    nom = prof.nominal
    max_n = prof.force.max_n if math.isfinite(prof.force.max_n) else 10.0
    # any unquantised sensor reports float counts; the node then keeps float channels
    ideal = not (prof.strain.quantise and prof.disp.quantise)
    return Calibration(
        strain_m_per_count=nom.strain_m_per_count,
        strain_offset=int(nom.strain_offset_counts),
        disp_m_per_count=nom.disp_m_per_count,
        force_cmd_per_n=nom.force_cmd_per_n,
        force_max_n=max_n,
        servo_table=lambda lo, hi: servo_table(lo, hi, nom),
        float_counts=ideal,
        element=prof.element_kind,
    )


def _fast_node(raw_cfg: dict, bus: Any, storage: Any, boots: int, uid: str) -> Node:
    """A node on the emulated HAL (hal/emu.py), its HX711 channels given the HX711 driver's
    word checks (hal/emuhx.py, the firmware's plausible.accept): the fast path in-process
    boards keep because it reads what the pin path reads, bit for bit (tests/test_silicon.py).
    Done here rather than in hal/emu.py, whose every byte counts on a 64 KB heap."""
    c, h = from_dict(raw_cfg)
    hal = emu.build(c, bus, storage, uid)
    hal.strain = [
        EmuHX711(bus, b["slot"]) if getattr(st, "_gated", False) else st
        for b, st in zip(c["bonds"], hal.strain, strict=True)
    ]
    return Node(c, hal, h, boots)


class InProcessLab:
    """The emulated boards of a network in this process, reachable through ``link()``."""

    def __init__(
        self,
        network: Network,
        profile: str | Profile = "ideal",
        seed: int = 0,
        nonlinear: bool = False,
        period_ms: int = 10,
        timeout_ms: int = 0,
        clock: VirtualClock | RealClock | None = None,
        flash_dir: str | Path | None = None,
        pins: str | None = None,
    ) -> None:
        """``flash_dir``: give every board a flash that outlives this process, the directory
        ``flash_dir/<board id>/`` (FileStorage); the boards boot from it, counting boots, as
        a board powers up from its own flash. Default: in-memory flash, boot count 1.

        ``pins``: a pin map (a family name such as "pico", or a path to a hardware/boards
        TOML): every board is then that board, its config wired by the map, its HAL built by
        hal/board.py with the real drivers on pin-level emulated silicon (silicon.py).
        None: the emulated HAL (hal/emu.py) reads the world directly (the only way the ideal
        profile's float counts can reach a node)."""
        self.network = network
        self.clock = clock if clock is not None else VirtualClock()
        self.pinmap = load_lab_pinmap(pins)
        self.silicon: dict[int, silicon.Silicon] = {}
        self.world = World(
            network, firmware_profile(profile, pins=self.pinmap is not None), seed=seed,
            nonlinear=nonlinear, clock=self.clock,
        )
        self.calibration = world_calibration(self.world)
        self.period_ms = period_ms
        self.configs: dict[int, dict] = {}
        self.nodes = {}
        self.storage: dict[int, MemStorage | FileStorage] = {}
        for bd in network.boards:
            cfg = node_config(
                network, bd, self.calibration, period_ms=period_ms, timeout_ms=timeout_ms
            )
            if self.pinmap is not None:
                cfg = apply_pins(cfg, self.pinmap)
                self.silicon[bd.id] = silicon.Silicon(
                    self.world.bus(bd.id), board_wiring(self.pinmap, cfg),
                    now_us=lambda: int(self.clock.now_ms() * 1000),
                )
            self.configs[bd.id] = cfg
            boots = 1
            if flash_dir is None:
                self.storage[bd.id] = MemStorage()
            else:
                root = Path(flash_dir) / str(bd.id)
                root.mkdir(parents=True, exist_ok=True)
                self.storage[bd.id] = FileStorage(str(root))
                boots = persist.bump_boots(self.storage[bd.id])
            self.nodes[bd.id] = self._boot(bd.id, boots, f"emu-{network.name}-{bd.id}")
        if self.world.profile.element_kind == "coil":  # the world reads the loops' gains
            from insitu.emulator.coil import firmware_law

            self.world.use_coils(firmware_law(self))
        self._now = self.clock.ticks_ms()
        self._links: list[MemoryLink] = []
        self.ticks = 0  # node control steps run, for benchmarks

    def link(self, boards: list[int] | None = None) -> MemoryLink:
        """A link to some boards (default: all of them, like a shared bus)."""
        ids = list(self.nodes) if boards is None else boards
        ln = MemoryLink(self, ids)
        self._links.append(ln)
        return ln

    def bus(self, **kw: Any) -> InProcessBus:
        """Every board on one emulated RS-485 bus (emulator/bus.py: ``timing``, ``dead``,
        ``babbler``): line time, reply slots and the boards' quiet replies modelled."""
        from insitu.emulator.bus import InProcessBus

        return InProcessBus(self, **kw)

    def reboot(self, board_id: int) -> None:
        """Power-cycle one board: a fresh node from its config and its (persisted) storage."""
        old = self.nodes[board_id]
        node = self.nodes[board_id] = self._boot(board_id, old.boots + 1, old.hal.uid)
        boot = codec.event(node.id, {"ev": "boot", "boots": node.boots})
        for ln in self._links:  # the announcement app/main.py prints, on every link
            ln.deliver(board_id, [boot])

    def _boot(self, board_id: int, boots: int, uid: str) -> Node:
        cfg = self.configs[board_id]
        storage = self.storage[board_id]
        sil = self.silicon.get(board_id)
        if sil is None:
            return _fast_node(cfg, self.world.bus(board_id), storage, boots, uid)
        # what app/setup.py does on a board: hal/board.py with the family's pin factories
        c, h = from_dict(cfg)
        return Node(c, hal_board.build(c, silicon.Family(sil, uid), storage), h, boots)

    # ------------------------------------------------------------------ time

    def _busy(self) -> bool:
        return any(n.busy for n in self.nodes.values())

    def _due_ms(self) -> int | None:
        dues = [d for n in self.nodes.values() if (d := n.due_ms()) is not None]
        return min(dues) if dues else None

    def advance(self, ms: float) -> None:
        """Let `ms` of virtual time pass, ticking nodes while any has work in hand."""
        end = self.clock.now_ms() + ms
        while self.clock.now_ms() < end:
            step = self.period_ms if self._busy() else end - self.clock.now_ms()
            step = min(step, end - self.clock.now_ms())
            self.clock.sleep_ms(step)
            self._tick_all()

    def step(self) -> dict[int, list[str]]:
        """Time to the next control tick that can change anything, then that tick; returns
        what each board wrote (also delivered to this lab's links).

        While every busy node is still settling nothing it does depends on the ticks in
        between (a servo holds, the tick only checks the time), so they are skipped.
        """
        due = self._due_ms() or 0
        period = self.period_ms
        self.clock.sleep_ms(max(period, -(-due // period) * period))
        return self._tick_all()

    def _tick_all(self) -> dict[int, list[str]]:
        now = self.clock.ticks_ms()
        wrote: dict[int, list[str]] = {}
        for bid, node in self.nodes.items():
            out = node.step(now)
            self.ticks += 1
            if out:
                wrote[bid] = out
                for ln in self._links:
                    ln.deliver(bid, out)
        return wrote


class MemoryLink:
    """An in-memory link: lines go to the nodes directly; receive() advances virtual time.

    ``receive(timeout)`` counts its timeout in virtual seconds. A broadcast reaches every board
    on the link in one send, as on a shared bus.
    """

    virtual = True  # time passes only when receive() runs the nodes

    def __init__(self, lab: InProcessLab, boards: list[int]) -> None:
        self.lab = lab
        self.boards = set(boards)
        self.name = f"emu://{lab.network.name}/" + ",".join(map(str, sorted(boards)))
        self._inbox: deque[str] = deque()
        self.sent = 0

    def deliver(self, bid: int, lines: list[str]) -> None:
        """What a board wrote in its control tick (a deferred reply, an event)."""
        if bid in self.boards:
            self._inbox.extend(lines)

    def send(self, line: str) -> None:
        self.sent += 1
        for bid in self.boards:
            out = self.lab.nodes[bid].handle_line(line)
            if out:
                self._inbox.extend(out)

    def now(self) -> float:
        """The link's clock, in seconds: the lab's virtual time."""
        return self.lab.clock.now_us() / 1e6

    def receive(self, timeout: float) -> str | None:
        lab = self.lab
        end = lab.clock.now_ms() + timeout * 1000.0
        while not self._inbox:
            if lab.clock.now_ms() >= end:
                return None
            if lab._busy():
                lab.step()
            else:
                return None  # nothing in hand anywhere: no reply will come
        return self._inbox.popleft()

    def close(self) -> None:
        if self in self.lab._links:
            self.lab._links.remove(self)


def board_addresses(network: Network) -> dict[int, str]:
    return {bd.id: node_address(bd) for bd in network.boards}
