"""Per-node config (the firmware's config.json) generated from a network file.

The schema is the firmware's (``insitu_node.config``, docs/firmware.md); this module only
fills it in from the network (which bonds a board owns, its actuators) and a calibration
(how raw counts map to metres and newtons). The firmware validates the result, so a config
the host writes can never be one a node would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from insitu.hardware.pinmap import BENCH
from insitu.network.schema import AXES, Board, Network
from insitu_node.config import canonical, config_hash, from_dict


@dataclass(frozen=True)
class Calibration:
    """Nominal conversions a node uses before (or without) per-node calibration."""

    strain_m_per_count: float
    strain_offset: int
    disp_m_per_count: float
    force_cmd_per_n: float
    force_max_n: float
    servo_table: Any  # callable (k_min, k_max) -> [[k, us], ...]
    float_counts: bool = False  # ideal emulated sensors only
    element: str = "servo"  # every bond's stiffness element: servo | coil (a coil build)
    # coil element: duty counts per newton, full duty, the sensing flexure's k_s (N/m) that the
    # loop leaves out; the kit's nominal figures (hardware/docs/node.md, option B)
    coil_cmd_per_n: float = BENCH.coil_cmd_per_n
    coil_max_cmd: int = BENCH.coil_max_cmd
    flexure_k: float = BENCH.flexure_k

    def element_config(self, k_min: float, k_max: float) -> dict[str, Any]:
        """The firmware's element entry of a bond (config.py schema)."""
        if self.element == "coil":
            return {"type": "coil", "cmd_per_n": self.coil_cmd_per_n,
                    "max_cmd": self.coil_max_cmd, "flex_k": self.flexure_k}  # fmt: skip
        if self.element != "servo":
            raise ValueError(f"unknown stiffness element {self.element!r} (known: servo, coil)")
        return {"type": "servo", "table": self.servo_table(k_min, k_max)}


def node_address(board: Board) -> str:
    """The protocol address of a board (its id as a token)."""
    return str(board.id)


def node_config(
    net: Network,
    board: Board,
    cal: Calibration,
    family: str = "emu",
    period_ms: int = 10,
    timeout_ms: int = 5000,
    tags: int = 16,
) -> dict[str, Any]:
    """The config dict of one board; validated by the firmware's own validator."""
    ids = net.node_ids
    lengths = np.linalg.norm(
        net.positions[net.bonds[:, 1]] - net.positions[net.bonds[:, 0]], axis=1
    )
    sensor = {"type": "emu", "float": cal.float_counts}
    bonds = []
    for slot, b in enumerate(board.bonds):
        k_min, k_max = float(net.k_min[b]), float(net.k_max[b])
        bonds.append(
            {
                "slot": slot,
                "bond": [ids[net.bonds[b, 0]], ids[net.bonds[b, 1]]],
                "rest": float(lengths[b]),
                "k_min": k_min,
                "k_max": k_max,
                "k_init": float(net.k_init[b]),
                "sensor": dict(sensor),
                "cal": {"gain": cal.strain_m_per_count, "offset": int(cal.strain_offset)},
                "element": cal.element_config(k_min, k_max),
            }
        )
    axes = range(net.dim)
    cfg: dict[str, Any] = {
        "v": 1,
        "node": node_address(board),
        "family": family,
        "period_ms": period_ms,
        "timeout_ms": timeout_ms,
        "tags": tags,
        "bonds": bonds,
        "force": [],
        "clamp": [],
        "disp": [],
    }
    disp_cal = {"gain": cal.disp_m_per_count, "offset": 0}
    for a in axes:
        where = {"axis": a, "node": board.node, "dir": AXES[a]}
        if "force" in board.carries:
            cfg["force"].append(
                {**where, "cmd_per_n": cal.force_cmd_per_n, "max_n": cal.force_max_n}
            )
        if "clamp" in board.carries:
            cfg["clamp"].append({**where, "cal": dict(disp_cal)})
        if "displacement" in board.carries:
            cfg["disp"].append({**where, "cal": dict(disp_cal), "sensor": dict(sensor)})
    from_dict(cfg)  # the firmware's validator: raises ConfigError(field, reason)
    return cfg


def config_text(cfg: dict[str, Any]) -> str:
    """config.json as deployed: canonical JSON, so host and node compute the same hash."""
    return canonical(cfg) + "\n"


def expected_hash(cfg: dict[str, Any]) -> str:
    return config_hash(canonical(cfg))


BUS_GAP_US = 20  # slot gap: two character times at 1 Mbaud (docs/protocol.md, "Bus")
BUS_BAUD = 1_000_000
BUS_TURNAROUND_US = 100  # a board's receive, handle_line start and driver enable
BUS_HANDLE_US = 20_000  # the longest a board takes to handle a request (an update's step)


def bus_listen_s(
    boards: int,
    gap_us: int = BUS_GAP_US,
    handle_us: int = BUS_HANDLE_US,
    turnaround_us: int = BUS_TURNAROUND_US,
) -> float:
    """How long the host listens after a quiet request before it takes silence for consent:
    the slowest board's handling, its turnaround and the last slot's wait."""
    return (handle_us + turnaround_us + (boards + 1) * gap_us) / 1e6


def bus_gather_s(
    boards: int, reply_bytes: int = 300, baud: int = BUS_BAUD, gap_us: int = BUS_GAP_US
) -> float:
    """Line time of an acknowledged broadcast on a bus (every board answers, one after
    another): each reply's bytes plus its slot's wait, (slot + 1) gaps of idle line after the
    reply before it — gap·N(N+1)/2 in all (10 s at 1,000 boards: connect and checkpoints only,
    never a phase)."""
    return (boards * reply_bytes * 10 / baud) + gap_us * boards * (boards + 1) / 2 / 1e6


def bus_slots(network: Network) -> dict[int, int]:
    """Each board's reply slot on a shared bus (board id → slot, unique, from 0). Boards
    that answer every measurement (displacement sensors) and the other actuated boards come
    first, so the replies a phase always has wait the least for their turn."""

    def rank(bd: Board) -> tuple[int, int]:
        return (0 if "displacement" in bd.carries else 1 if bd.carries else 2, bd.id)

    return {bd.id: i for i, bd in enumerate(sorted(network.boards, key=rank))}


def bus_config(
    slot: int,
    uart: dict[str, int] | None = None,
    baud: int = BUS_BAUD,
    gap_us: int = BUS_GAP_US,
) -> dict[str, Any]:
    """A board's ``bus.json`` (firmware hal/bus.py): its slot (``bus_slots``, computed once
    for the network) and gap, and on rp2/esp32 the UART and the transceiver's pins from the
    board's pin map (``uart``: uart, tx, rx, de)."""
    cfg: dict[str, Any] = {"slot": slot, "gap_us": gap_us}
    if uart is not None:
        cfg.update(uart)
        cfg["baud"] = baud
    return cfg
