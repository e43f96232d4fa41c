"""Item 7 of docs/reliability.md, second half: a watchdog-enabled node whose firmware hangs is
reset by its watchdog and comes back in a known state; without the watchdog the same hang
leaves it hung.

One real MicroPython-process board (board 2 of li-mao-2024: two bonds, force, clamp) runs the
real firmware (main.py) with ``wdt.enable``; the host talks to it through the Rig over pyserial
on the board's pty. The hang is injected from the emulated hardware, not the protocol: the
board's strain device stops answering (``MicroPythonBoard.hang``), so the control loop blocks
inside a bus read, as it would on an I2C slave holding the bus. The host-silence timeout is
off (``timeout_ms=0``), so nothing but the boot itself can have turned the force off.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from insitu.emulator.mplab import MicroPythonLab
from insitu.links import open_link
from insitu.network.schema import Board, Network, Port, load_network
from insitu.rig.session import Rig, RigError, RigReboot

LI_MAO = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"
BOARD = 2
WDT_MS = 1000  # config range 100..8388; the firmware feeds every 100 ms
WDT = {"enable": True, "timeout_ms": WDT_MS, "grace_ms": 300}
STEP = 7  # checkpoint number of the save


def _rig(lab: MicroPythonLab, net: Network) -> tuple[Rig, Board]:
    """A Rig for just this board (a network restricted to it), over pyserial on its pty."""
    bd = next(b for b in net.boards if b.id == BOARD)
    rig = Rig(replace(net, boards=(bd,)), open_link(lab.boards[BOARD].port),
              configs={BOARD: lab.configs[BOARD]}, timeout=0.5, retries=2)  # fmt: skip
    rig.connect()
    return rig, bd


def _force_and_clamp(rig: Rig, lab: MicroPythonLab, bd: Board) -> None:
    f0 = lab.world.forces()
    rig.apply_forces({Port(bd.node, 1): 0.02})
    rig.clamp(Port(bd.node, 0), 1e-5)
    assert not np.array_equal(lab.world.forces(), f0)
    assert lab.world.clamps()


def _ping_until_answered(rig: Rig, bd: Board, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return rig.request(bd, "ping", timeout=0.05)
        except RigError:
            if time.monotonic() > deadline:
                raise


def test_watchdog_resets_a_hung_node_into_its_last_checkpoint(tmp_path):
    net = load_network(LI_MAO)
    with MicroPythonLab(net, boards=[BOARD], timeout_ms=0, wdt=WDT, workdir=tmp_path) as lab:
        board = lab.boards[BOARD]
        rig, bd = _rig(lab, net)
        try:
            boots0 = rig.boards[str(BOARD)].boots
            f_off = lab.world.forces()
            # learned state: one SPSA step with Adam (stiffness and moments move), saved
            rig.request(bd, "perturb", {"seed": 5, "c": 2.0, "sign": 1})
            rig.request(bd, "update", {"rule": "spsa", "lp": 1.0, "lm": 0.5, "lr": 3.0,
                                       "opt": "adam"})  # fmt: skip
            rig.save(STEP)
            saved = rig.request(bd, "state")
            k_world_saved = lab.world.stiffness()[list(bd.bonds)]
            assert saved["opt"]["t"] == 1 and any(saved["opt"]["m"])
            assert saved["kb"] != [137.5, 137.5]
            # more learning after the save: in RAM only, must not survive the reset
            rig.request(bd, "perturb", {"seed": 6, "c": 2.0, "sign": 1})
            rig.request(bd, "update", {"rule": "spsa", "lp": 0.2, "lm": 1.0, "lr": 3.0,
                                       "opt": "adam"})  # fmt: skip
            assert rig.request(bd, "state", {"only": "kb"})["kb"] != saved["kb"]
            _force_and_clamp(rig, lab, bd)
            board.wait_event("wdt", timeout=5)  # started after the grace period

            n = len(board.events)
            pid = board.pid
            board.hang("strain")
            hung = board.wait_event("hang", start=n, timeout=2)  # the control loop blocks
            boot = board.wait_event("boot", start=n, timeout=WDT_MS / 1000 + 5)
            assert boot.detail == "wdt" and board.pid != pid
            p = _ping_until_answered(rig, bd, timeout=10)
            t_back = time.monotonic()
            # known state before the host does anything: force off, clamp released
            assert np.array_equal(lab.world.forces(), f_off), "force still on after the reset"
            assert lab.world.clamps() == {}, "clamp still held after the reset"
            assert np.allclose(lab.world.stiffness()[list(bd.bonds)], k_world_saved)
            assert p["boots"] == boots0 + 1
            with pytest.raises(RigReboot) as e:  # the host notices
                rig.check_boots()
            assert e.value.boards == [str(BOARD)]
            info = rig.request(bd, "identify")
            assert (info["boots"], info["persist"], info["step"]) == (boots0 + 1, "ok", STEP)
            assert info["reset"] == "wdt"  # a host that connects later learns it too
            boot_evs = [ev for a, ev in rig.events if a == str(BOARD) and ev.get("ev") == "boot"]
            assert boot_evs and boot_evs[-1].get("reset") == "wdt"
            assert boot_evs[-1]["boots"] == boots0 + 1
            st = rig.request(bd, "state")
            assert st["kb"] == saved["kb"] and st["k"] == saved["kb"]
            assert st["opt"] == saved["opt"]
            assert not st["busy"]
            assert rig.recover(STEP) == [str(BOARD)]  # as a training run handles RigReboot
            rig.check_boots()
            print(f"\nwatchdog {WDT_MS} ms: hang -> wdt reset {boot.t - hung.t:.2f} s, "
                  f"-> node answering {t_back - hung.t:.2f} s; boots {boots0} -> {p['boots']}, "
                  f"checkpoint {info['step']} restored")  # fmt: skip
            # the last feed came up to one feed period (100 ms) before the hang: the reset
            # waited for the watchdog, and came when it was due
            assert 0.5 * WDT_MS / 1000 < boot.t - hung.t < WDT_MS / 1000 + 3
        finally:
            rig.close()


def test_without_the_watchdog_the_same_hang_stays_hung(tmp_path):
    net = load_network(LI_MAO)
    wdt = dict(WDT, enable=False)
    with MicroPythonLab(net, boards=[BOARD], timeout_ms=0, wdt=wdt, workdir=tmp_path) as lab:
        board = lab.boards[BOARD]
        rig, bd = _rig(lab, net)
        try:
            _force_and_clamp(rig, lab, bd)
            f_on = lab.world.forces()
            n = len(board.events)
            pid = board.pid
            board.hang("strain")
            hung = board.wait_event("hang", start=n, timeout=2)
            while time.monotonic() - hung.t < 3 * WDT_MS / 1000:
                with pytest.raises(RigError, match="no reply"):
                    rig.request(bd, "ping", timeout=0.2)
            assert [e.kind for e in board.events[n:]] == ["hang"]  # no reset, no watchdog
            assert board.pid == pid
            assert np.array_equal(lab.world.forces(), f_on)  # and the force stays on
            assert lab.world.clamps()
        finally:
            rig.close()
