"""A virtual lab of real MicroPython boards: one ``micropython`` process per board.

Each board's flash holds what ``insitu flash`` would put there — ``main.py``, the
``insitu_node`` package and the board's ``config.json`` — and its emulated HAL reaches the
world through ``emubus``. The world runs on the real clock (the interpreters do). The ports
are pseudo-terminals: pyserial, the host session and mpremote attach to them as to USB boards.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from pathlib import Path

from insitu.deploy.flash import FIRMWARE_DIR, firmware_files
from insitu.deploy.nodeconfig import config_text, node_config
from insitu.emulator.clock import RealClock
from insitu.emulator.inprocess import (
    board_wiring,
    firmware_profile,
    load_lab_pinmap,
    world_calibration,
)
from insitu.emulator.mpboard import MicroPythonBoard
from insitu.emulator.world import World
from insitu.hardware.pinmap import apply_pins
from insitu.network.schema import Network


def install_firmware(flash: Path, config: dict | None = None, root: Path = FIRMWARE_DIR) -> None:
    """Copy the firmware (and a config) into a board's flash directory."""
    for rel in firmware_files(root):  # the same files `insitu flash` copies
        dst = flash / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, dst)
    if config is not None:
        (flash / "config.json").write_text(config_text(config))


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
        timeout_ms: int = 0,
        wdt: dict | None = None,
        pins: str | None = None,
    ) -> None:
        """``timeout_ms``: host-silence timeout of every node (0: never go safe);
        ``wdt``: the configs' ``wdt`` section (``enable``, ``timeout_ms``, ``grace_ms``);
        ``pins``: a pin map (see InProcessLab): each board's config is wired by it, its
        firmware builds its HAL with hal/board.py and the family's pin factories on the
        emulated machine's pin-level silicon (INSITU_WIRING)."""
        self.network = network
        self.clock = RealClock()
        self.pinmap = load_lab_pinmap(pins)
        self.world = World(
            network, firmware_profile(profile, pins=self.pinmap is not None), seed=seed,
            clock=self.clock,
        )
        self.calibration = world_calibration(self.world)
        self._tmp = None if workdir else tempfile.mkdtemp(prefix="insitu-lab-")
        self.workdir = Path(workdir or self._tmp)
        lock = threading.RLock()  # the world is shared: one bus call at a time
        ids = [bd.id for bd in network.boards] if boards is None else boards
        self.configs: dict[int, dict] = {}
        self.boards: dict[int, MicroPythonBoard] = {}
        for bd in network.boards:
            if bd.id not in ids:
                continue
            cfg = node_config(network, bd, self.calibration, timeout_ms=timeout_ms)
            if wdt is not None:
                cfg["wdt"] = dict(wdt)
            env = {}
            if self.pinmap is not None:
                cfg = apply_pins(cfg, self.pinmap)
                env["INSITU_WIRING"] = json.dumps(board_wiring(self.pinmap, cfg))
                env["INSITU_SEED"] = str(seed * 7919 + bd.id)
            self.configs[bd.id] = cfg
            flash = self.workdir / f"board-{bd.id}"
            flash.mkdir(parents=True, exist_ok=True)
            if install:
                install_firmware(flash, cfg)
            self.boards[bd.id] = MicroPythonBoard(
                flash,
                unique_id=f"{network.name}-{bd.id}",
                bus=self.world.bus(bd.id),
                bus_lock=lock,
                env=env,
                name=f"{network.name}/board-{bd.id}",
            )

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

    def stop(self) -> None:
        for b in self.boards.values():
            b.stop()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> MicroPythonLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
