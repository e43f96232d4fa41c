"""Opening boards: the one place below the command line that chooses boards and connects to them.

Boards are on serial ports (real ones, or emulated ones served on ptys), in this process
(``InProcessLab``) or MicroPython processes (``MicroPythonLab``); :func:`open_rig` chooses
between them, and :func:`board_configs` generates the config every board must be running —
what ``insitu flash`` writes and what a session compares config hashes with. Trainers, the
calibration and the run store take the rig they are given; only this module (the CLI and the
benchmarks aside) imports the emulator, and only inside the functions that need it, so
``import insitu.rig`` on a bench host does not load the emulated world
(tests/test_layering.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from insitu.deploy.nodeconfig import Calibration, node_config
from insitu.network.schema import Board, Network
from insitu.rig.session import Rig

if TYPE_CHECKING:  # annotations only: nothing here runs the emulator at import
    from insitu.calibrate import Weights
    from insitu.emulator.hardware import Profile

PERIOD_MS = 10  # the nodes' control period unless a caller asks for another
EMU = "emu"  # the emulated board family
MICROPYTHON_TIMEOUT = 3.0  # s: MicroPython processes answer slower than in-process nodes


# ------------------------------------------------------------------------------ configs


def emulated_calibration(profile: str | Profile = "ideal", pins: bool = False) -> Calibration:
    """The nominal calibration of emulated boards built with ``profile`` (pin-level ones if
    ``pins``): what their configs carry before any per-node calibration."""
    from insitu.emulator.inprocess import firmware_profile, profile_calibration

    return profile_calibration(firmware_profile(profile, pins=pins))


def board_configs(
    network: Network,
    boards: Sequence[Board] | None = None,
    family: str | None = None,
    pins: str | None = None,
    profile: str | Profile = "ideal",
    element: str = "servo",
    period_ms: int = PERIOD_MS,
    calibration: Calibration | None = None,
    timeout_ms: int | None = None,
    tags: int = 16,
) -> dict[int, dict]:
    """The config.json each board must be running, board id → dict (validated by the
    firmware): the one place they are generated, for ``insitu flash`` and for every rig.

    ``family`` overrides the network file's per-board family. ``emu`` boards (in-process,
    MicroPython processes, or either served on ptys) get the nominal calibration of the
    emulator's ``profile`` (or ``calibration``, if given) and, with ``pins``, the wiring of
    that pin map (pin-level emulated boards, as the labs wire them). Real families get the
    nominal bench calibration and the pins of ``pins`` (default: hardware/boards/<family>.toml)
    for ``element``. ``timeout_ms``: the host-silence timeout (default 0, never, on emulated
    boards; the firmware's 5 s on real ones). Raises FlashError (one line).
    """
    from insitu.deploy.flash import FlashError
    from insitu.hardware.pinmap import (
        FAMILY_CHIP,
        apply_pins,
        bench_calibration,
        default_pinmap_path,
        load_pinmap,
    )

    boards = list(network.boards if boards is None else boards)
    out: dict[int, dict] = {}
    pinmaps: dict[str, Any] = {}
    for bd in boards:
        fam = family or bd.family
        if fam == EMU:
            if calibration is None:
                calibration = emulated_calibration(profile, pins=pins is not None)
            cfg = node_config(network, bd, calibration, family=EMU, period_ms=period_ms,
                              timeout_ms=timeout_ms or 0, tags=tags)  # fmt: skip
            if pins is not None:
                from insitu.emulator.inprocess import load_lab_pinmap

                cfg = apply_pins(cfg, load_lab_pinmap(pins))
            out[bd.id] = cfg
            continue
        if fam not in FAMILY_CHIP:
            raise FlashError(f"board {bd.id}: unknown family {fam!r} (pico, pico2, esp32, emu)")
        if fam not in pinmaps:
            path = pins or str(default_pinmap_path(fam))
            pm = load_pinmap(path)
            if pm.family != fam:
                raise FlashError(
                    f"--pins {path}: a {pm.family} pin map, but board {bd.id} is a {fam}; "
                    "pass --family or another --pins"
                )
            pinmaps[fam] = pm
        pm = pinmaps[fam]
        extra = {} if timeout_ms is None else {"timeout_ms": timeout_ms}
        cfg = node_config(network, bd, bench_calibration(), family=pm.chip.firmware_family,
                          period_ms=period_ms, tags=tags, **extra)  # fmt: skip
        out[bd.id] = apply_pins(cfg, pm, element=element)
    return out


def expected_configs(
    network: Network,
    calibration: Calibration,
    period_ms: int = PERIOD_MS,
    timeout_ms: int = 0,
) -> dict[int, dict]:
    """Every board's config for a calibration in hand (a lab's own): board_configs for emu
    boards with that calibration."""
    return board_configs(network, family=EMU, period_ms=period_ms, calibration=calibration,
                         timeout_ms=timeout_ms)  # fmt: skip


def board_hashes(
    network: Network, profile: str | Profile = "ideal", period_ms: int = PERIOD_MS
) -> dict[int, str]:
    """Config hash per board that emulated boards of ``profile`` will be running."""
    from insitu.deploy.nodeconfig import expected_hash

    configs = board_configs(network, family=EMU, profile=profile, period_ms=period_ms)
    return {b: expected_hash(c) for b, c in configs.items()}


# ------------------------------------------------------------------------------ opening


def open_rig(
    network: Network,
    ports: Sequence[str] | None = None,
    micropython: bool = False,
    family: str | None = None,
    pins: str | None = None,
    profile: str | Profile = "ideal",
    seed: int = 0,
    period_ms: int = PERIOD_MS,
    flash_dir: str | Path | None = None,
    timeout: float | None = None,
    bus: bool = False,
    listen_s: float | None = None,
) -> tuple[Any, Rig]:
    """Open and connect the boards of ``network``: ``(lab, rig)``. ``bus``: the boards share
    one RS-485 line (quiet phases, docs/protocol.md "Bus"): the ports are bus adapters, or the
    emulated boards are put on one emulated bus; ``listen_s``: the bus's listen time on ports
    (None: what the deployed boards need, deploy.nodeconfig.bus_listen_s).

    - ``ports``: boards on these serial ports, flashed with ``family``/``pins`` (emu boards
      on ptys: with ``profile``); ``lab`` is None.
    - ``micropython``: the boards as MicroPython processes on ptys (a started
      ``MicroPythonLab``: stop it with :func:`close_rig`).
    - otherwise in-process boards (``InProcessLab``) with ``profile``, ``seed``,
      ``flash_dir`` and ``pins`` (pin-level silicon).

    Raises FlashError (configs), LinkError or RigError with a one-line message; no link is
    left open on failure.
    """
    if ports:
        return None, port_rig(network, list(ports), family, pins,
                              timeout=2.0 if timeout is None else timeout,
                              profile=profile, bus=bus, listen_s=listen_s)  # fmt: skip
    if micropython:
        # MicroPython boards run the default control period (MicroPythonLab has no other)
        wait = MICROPYTHON_TIMEOUT if timeout is None else timeout
        return micropython_rig(network, profile, seed, pins=pins, timeout=wait, bus=bus)
    extra = {} if timeout is None else {"timeout": timeout}
    return emulated_rig(network, profile, seed, period_ms=period_ms, flash_dir=flash_dir,
                        pins=pins, bus=bus, **extra)  # fmt: skip


def close_rig(lab: Any, rig: Rig) -> None:
    """Close the rig's links and stop the lab's processes (if it has any)."""
    rig.close()
    stop = getattr(lab, "stop", None)
    if stop is not None:
        stop()


def port_rig(
    network: Network,
    ports: list[str],
    family: str | None = None,
    pins: str | None = None,
    timeout: float = 2.0,
    profile: str | Profile | None = None,
    bus: bool = False,
    listen_s: float | None = None,
) -> Rig:
    """A connected Rig over boards on these serial ports, flashed with ``family``/``pins``
    (their configs are generated the way `insitu flash` deployed them, for ``profile``'s
    phase timing if given). Raises FlashError, LinkError or RigError with a one-line
    message; no link is left open on failure."""
    from insitu.links import SerialLink

    configs = board_configs(network, family=family, pins=pins, profile=profile or "ideal")
    links = []
    try:
        from insitu.deploy.nodeconfig import BUS_BAUD
        from insitu.links.serial_link import DEFAULT_BAUD

        # a bus adapter runs at the baud the boards' bus.json gives their UARTs
        baud = BUS_BAUD if bus else DEFAULT_BAUD
        links = [SerialLink(port, baud, bus=bus, listen_s=listen_s) for port in ports]
        rig = Rig(network, links, configs=configs, timeout=timeout)
        rig.connect()
    except Exception:
        for ln in links:
            ln.close()
        raise
    return rig


def emulated_rig(
    network: Network,
    profile: str | Profile = "ideal",
    seed: int = 0,
    period_ms: int = PERIOD_MS,
    lab_network: Network | None = None,
    flash_dir: str | Path | None = None,
    pins: str | None = None,
    bus: bool = False,
    **rig_options: Any,
) -> tuple[Any, Rig]:
    """Start in-process boards for `network` and a connected Rig over one memory link.

    The expected configs are generated from `network` independently of the lab's own, so a
    lab built from another file (`lab_network`, for tests) is refused like a bench would be.
    ``flash_dir`` keeps the boards' flash on disk (see InProcessLab), so they can outlive the
    host and boot from it again.
    """
    from insitu.emulator.inprocess import InProcessLab

    lab = InProcessLab(
        lab_network or network, profile=profile, seed=seed, period_ms=period_ms,
        flash_dir=flash_dir, pins=pins,
    )  # fmt: skip
    configs = board_configs(network, family=EMU, pins=pins, profile=profile, period_ms=period_ms)
    rig = Rig(network, lab.bus() if bus else lab.link(), configs=configs, **rig_options)
    rig.connect()
    return lab, rig


def micropython_rig(
    network: Network,
    profile: str | Profile = "ideal",
    seed: int = 0,
    pins: str | None = None,
    timeout: float = MICROPYTHON_TIMEOUT,
    bus: bool = False,
) -> tuple[Any, Rig]:
    """Start the boards as MicroPython processes on ptys and connect a Rig over their ports
    (``bus``: over one emulated bus joining them, the host on its adapter's port); the lab is
    started (stop it with :func:`close_rig`), and stopped again on failure."""
    from insitu.emulator.mplab import MicroPythonLab
    from insitu.links import SerialLink

    # by default the kit's boards of the file's families (MicroPythonLab's "auto")
    lab = MicroPythonLab(network, profile, seed, pins=pins or "auto", bus=bus).start()
    links = []
    try:
        if bus:
            links = [SerialLink(lab.bus_hub().port, bus=True, listen_s=lab.bus_listen_s)]
        else:
            links = [SerialLink(port) for port in lab.ports().values()]
        configs = board_configs(network, family=lab.family,
                                pins=None if lab.deployed else pins, profile=profile)  # fmt: skip
        rig = Rig(network, links, configs=configs, timeout=timeout)
        rig.connect()
    except BaseException:
        for ln in links:
            ln.close()
        lab.stop()
        raise
    return lab, rig


# ------------------------------------------------------------------------------ a lab's extras


def lab_weights(lab: Any) -> Weights:
    """Known weights hung on an emulated lab's world (exact forces, no actuator)."""
    from insitu.emulator.weights import EmulatedWeights

    return EmulatedWeights(lab.world)


TruthGradient = Callable[[str, np.ndarray, np.ndarray, Any], np.ndarray]


def truth_gradient(lab: Any) -> TruthGradient:
    """``(io, X, Y, loss_grad) -> dL/dk`` of the batch-mean loss from the physics core at an
    emulated lab's true stiffness: what boards' accumulated Σ e·e_adj / B must equal."""
    from insitu.emulator.gradcheck import exact_batch_gradient

    def truth(io: str, X: np.ndarray, Y: np.ndarray, loss_grad: Any) -> np.ndarray:
        return exact_batch_gradient(lab.world, lab.network, io, X, Y, loss_grad)

    return truth
