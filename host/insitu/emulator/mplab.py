"""A virtual lab of real MicroPython boards: one ``micropython`` process per board.

Each board's flash holds what ``insitu flash`` would put there — ``main.py``, the
``insitu_node`` package and the board's ``config.json``. On profiles with integer counts
(realistic, harsh, miscalibrated) a board is, by default, the board its network file names:
its config is exactly what ``insitu flash`` deploys to that family (``rig.lab.board_configs``: the
kit's nominal calibration, the family's pin map), and its firmware builds its HAL as on the
bench — ``hal/board.py``, the family's pin factories and the real drivers — on the emulated
``machine``'s pin-level silicon, which exchanges the parts' quantities with the world over
``emubus``. The ideal profile's float counts cannot cross pins: those boards run the emulated
HAL (``hal/emu.py``) on ``emubus`` directly. The world runs on the real clock (the interpreters
do). The ports are pseudo-terminals: pyserial, the host session and mpremote attach to them
as to USB boards.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from pathlib import Path

from insitu.deploy.flash import FIRMWARE_DIR, firmware_files
from insitu.deploy.nodeconfig import bus_config, bus_slots, config_text, node_config
from insitu.emulator.bus import Babbler, BusTiming, PtyBus
from insitu.emulator.clock import RealClock
from insitu.emulator.hardware import get_profile
from insitu.emulator.inprocess import (
    board_wiring,
    firmware_profile,
    load_lab_pinmap,
    world_calibration,
)
from insitu.emulator.mpboard import MicroPythonBoard
from insitu.emulator.world import World
from insitu.hardware.pinmap import apply_pins, default_pinmap_path, load_pinmap
from insitu.network.schema import Network
from insitu.rig.lab import board_configs


def install_firmware(flash: Path, config: dict | None = None, root: Path = FIRMWARE_DIR) -> None:
    """Copy the firmware (and a config) into a board's flash directory."""
    for rel in firmware_files(root):  # the same files `insitu flash` copies
        dst = flash / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, dst)
    if config is not None:
        (flash / "config.json").write_text(config_text(config))


# boards that are processes sharing the host's cores answer a bus request when the scheduler
# lets them, not within a board's 20 ms: the host listens longer on an emulated bus of them
MP_BUS_LISTEN_S = 0.5

# one interpreter process and one pseudo-terminal per board (a few MB each): where scale
# matters the emulator runs in-process nodes instead (docs/emulator-boards.md)
MAX_BOARDS = 256


def too_many_boards(network: Network) -> str | None:
    """Why ``network`` is too big for MicroPython boards on this machine, or None."""
    n = len(network.boards)
    if n > MAX_BOARDS:
        return (f"{network.name}: {n:,} boards; MicroPython boards are one process each, at "
                f"most {MAX_BOARDS} (drop --micropython for in-process boards)")
    return None


class MicroPythonLab:
    """The boards of a network as MicroPython processes bound to one world."""

    def __init__(
        self,
        network: Network,
        profile: str = "ideal",
        seed: int = 0,
        workdir: str | Path | None = None,
        boards: list[int] | None = None,
        install: bool = True,
        timeout_ms: int | None = None,
        wdt: dict | None = None,
        pins: str | None = "auto",
        bus: bool = False,
    ) -> None:
        """``timeout_ms``: host-silence timeout of every node (0: never go safe; None: the
        config's own, 5 s as flashed on pins, 0 on the emulated HAL); ``wdt``: the configs'
        ``wdt`` section (``enable``, ``timeout_ms``, ``grace_ms``); ``pins``: "auto" (the
        default) wires each board as its family's kit board when the profile has integer
        counts (module doc), and gives ideal boards the emulated HAL; a pin map (see
        InProcessLab) wires every board by that map; None: the emulated HAL on any profile.
        ``bus``: every board's flash also holds its bus.json (deploy.nodeconfig.bus_config):
        the firmware then talks as a bus drop, and ``bus_hub()`` joins the boards into one
        emulated bus."""
        self.network = network
        self.clock = RealClock()
        self._hub: PtyBus | None = None
        prof = get_profile(profile)
        quantised = prof.strain.quantise and prof.disp.quantise
        deployed = pins == "auto" and quantised  # the configs `insitu flash` writes
        self.pinmap = None if pins == "auto" else load_lab_pinmap(pins)
        self.deployed = deployed  # configs as `insitu flash` writes them for the file's family
        self.world = World(
            network,
            firmware_profile(profile, pins=deployed or self.pinmap is not None),
            seed=seed,
            clock=self.clock,
        )
        self.calibration = world_calibration(self.world)
        self._tmp = None if workdir else tempfile.mkdtemp(prefix="insitu-lab-")
        self.workdir = Path(workdir or self._tmp)
        lock = threading.RLock()  # the world is shared: one bus call at a time
        ids = [bd.id for bd in network.boards] if boards is None else boards
        self.configs: dict[int, dict] = {}
        self.boards: dict[int, MicroPythonBoard] = {}
        # what `insitu flash` writes (rig.lab.board_configs, the one generator)
        flashed = board_configs(network, profile=profile) if deployed else {}
        slots = bus_slots(network) if bus else {}
        for bd in network.boards:
            if bd.id not in ids:
                continue
            env = {}
            pm = None
            if deployed:
                cfg = flashed[bd.id]
                pm = load_pinmap(default_pinmap_path(bd.family))
                env["INSITU_WIRING"] = json.dumps(board_wiring(pm, cfg))
            else:
                cfg = node_config(network, bd, self.calibration, timeout_ms=0)
                if self.pinmap is not None:
                    pm = self.pinmap
                    cfg = apply_pins(cfg, pm)
                    env["INSITU_WIRING"] = json.dumps(board_wiring(pm, cfg))
            if timeout_ms is not None:
                cfg["timeout_ms"] = timeout_ms
            if wdt is not None:
                cfg["wdt"] = dict(wdt)
            self.configs[bd.id] = cfg
            flash = self.workdir / f"board-{bd.id}"
            flash.mkdir(parents=True, exist_ok=True)
            if install:
                install_firmware(flash, cfg)
                if bus:  # a board on pins drives its pin map's UART and DE pin
                    uart = pm.bus.json() if pm is not None and pm.bus is not None else None
                    (flash / "bus.json").write_text(json.dumps(bus_config(slots[bd.id], uart)))
            self.boards[bd.id] = MicroPythonBoard(
                flash,
                unique_id=f"{network.name}-{bd.id}",
                bus=self.world.bus(bd.id),
                bus_lock=lock,
                env=env,
                name=f"{network.name}/board-{bd.id}",
            )

    bus_listen_s = MP_BUS_LISTEN_S  # what a host listening on their bus should wait

    @property
    def family(self) -> str | None:
        """What to tell ``port_rig`` (``insitu ... --port --family``) about these boards:
        None, the network file's families (boards as flashed); "emu" for emulated-HAL boards."""
        return None if self.deployed else "emu"

    def start(self, wait: float = 30.0) -> MicroPythonLab:
        """Power the boards on and wait until each firmware has announced its boot."""
        for b in self.boards.values():
            b.start()
        if wait:
            for b in self.boards.values():
                b.wait_output(b'"ev":"boot"', timeout=wait)
        return self

    def ports(self) -> dict[int, str]:
        return {bid: b.port for bid, b in self.boards.items()}

    def bus_hub(self, timing: BusTiming | None = None, babbler: Babbler | None = None) -> PtyBus:
        """The started boards (made with ``bus=True``) on one emulated bus: a started
        ``PtyBus`` whose ``port`` is the host's end (stopped with the lab)."""
        if self._hub is None:
            self._hub = PtyBus(self.ports(), bus_slots(self.network), timing,
                               name=f"bus://{self.network.name}",
                               babbler=babbler).start()  # fmt: skip
        return self._hub

    def stop(self) -> None:
        if self._hub is not None:
            self._hub.stop()
            self._hub = None
        for b in self.boards.values():
            b.stop()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> MicroPythonLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
