"""56 MicroPython boards (a 7 × 8 triangular lattice) on one emulated RS-485 bus: each board's
flash holds bus.json, so the real firmware talks as a bus drop (hal/bus.py) on the real
interpreter; the host reaches them all through one port. The gradient the boards accumulate
equals the exact one on the ideal profile, and `insitu train --port BUS --bus` trains them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from insitu.cli.main import main
from insitu.emulator.gradcheck import exact_batch_gradient
from insitu.emulator.mplab import MP_BUS_LISTEN_S, MicroPythonLab
from insitu.links import SerialLink
from insitu.network.generate import to_toml, triangular
from insitu.network.schema import load_network
from insitu.rig.lab import board_configs
from insitu.rig.session import Rig, RigError
from insitu.trainers.insitu import Phases, accumulate_batch


# first: the module's 56-board lab (below) is started by the first test that asks for it,
# and 56 processes beside 14 more would only measure this machine's load
def test_kit_boards_on_a_bus_drive_their_uart_and_driver_enable_pin() -> None:
    """Realistic li-mao-2024 boards as flashed for their family (Pico pins): bus.json names
    the pin map's UART and DE pins, so the firmware's UartLink runs (on the emulated
    machine.UART, whose bytes are the board's drop on the emulated bus: no fallback to USB),
    and the gradient through the bus matches the emulator's truth."""
    from insitu.emulator.gradcheck import _check
    from insitu.hardware.pinmap import default_pinmap_path, load_pinmap
    from insitu.resources import network_path
    from insitu.rig.lab import close_rig, open_rig

    net = load_network(network_path("li-mao-2024"))
    load = np.zeros(net.n_nodes * net.dim)
    f_adj = np.zeros_like(load)
    load[net.node_ids.index(11) * 2 + 1] = -0.04
    f_adj[net.node_ids.index(13) * 2 + 1] = 0.02
    lab, rig = open_rig(net, micropython=True, profile="realistic", bus=True)
    try:
        res = _check(rig, lab.world, net, load, f_adj, None)
        assert res.cosine > 0.999, res.cosine
        pins = {bd.family: load_pinmap(default_pinmap_path(bd.family)) for bd in net.boards}
        for bd in net.boards:
            cfg = json.loads((lab.workdir / f"board-{bd.id}" / "bus.json").read_text())
            assert {k: cfg[k] for k in ("uart", "tx", "rx", "de")} == pins[bd.family].bus.json()
            text = lab.boards[bd.id].transcript()
            assert b'"ev":"boot"' in text and b"bus_err" not in text
    finally:
        close_rig(lab, rig)


@pytest.fixture(scope="module")
def bus_lab(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("bus")
    path = d / "tri56.toml"
    path.write_text(to_toml(triangular(7, 8)))
    net = load_network(path)
    assert len(net.boards) >= 50
    lab = MicroPythonLab(net, "ideal", 0, bus=True).start()
    try:
        yield net, path, lab, lab.bus_hub()
    finally:
        lab.stop()


def test_every_board_holds_its_bus_json_and_its_slot(bus_lab) -> None:
    net, _, lab, hub = bus_lab
    slots = set()
    for bd in net.boards:
        cfg = json.loads((lab.workdir / f"board-{bd.id}" / "bus.json").read_text())
        slots.add(cfg["slot"])
        assert "uart" not in cfg  # the unix port's drop is its console
    assert slots == set(range(len(net.boards)))


def test_gradient_on_micropython_boards_on_one_bus_is_exact(bus_lab) -> None:
    net, _, lab, hub = bus_lab
    rig = Rig(net, SerialLink(hub.port, bus=True, listen_s=MP_BUS_LISTEN_S),
              configs=board_configs(net, family=lab.family, profile="ideal"), timeout=5.0)
    try:
        rig.connect()
        assert len(rig.boards) == len(net.boards)
        rig.forces_off()
        rig.reset()
        io = net.io_set("default")
        X = -np.array([[0.02], [0.035], [0.012]])
        y = np.zeros((3, len(io.outputs)))

        def loss_grad(u: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
            d = (u - target) * 1e3
            return float(np.mean(d**2)), 2e3 * d / d.size

        sent = rig.counters.sent
        accumulate_batch(rig, io.inputs, io.outputs, X, y, loss_grad, Phases())
        # a phase is O(1) frames on the line: per sample, forces at 3 ports (set, later off)
        # plus two quiet measurements and their busy checks, whatever the 56 boards
        assert rig.counters.sent - sent <= 3 * 12
        g, count = rig.accumulated()
        assert count == 3
        exact = exact_batch_gradient(lab.world, net, "default", X, y, loss_grad)
        np.testing.assert_allclose(g / 3, exact, rtol=0, atol=1e-9 * np.max(np.abs(exact)))
        rig.reset()
    finally:
        rig.close()


def test_training_through_the_bus_port(bus_lab, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    net, path, lab, hub = bus_lab
    csv = tmp_path / "task.csv"
    rows = ["29:y,u:51:y,u:54:y"]
    for f in (-0.01, -0.015, -0.02, -0.025, -0.03, -0.035):
        rows.append(f"{f},{f * 0.004},{f * 0.002}")
    csv.write_text("\n".join(rows) + "\n")
    argv = ["train", str(path), "--task-csv", str(csv), "--method", "insitu", "--port",
            hub.port, "--bus", "--bus-listen", str(MP_BUS_LISTEN_S), "--family", "emu",
            "--profile", "ideal", "--uncalibrated", "--epochs", "1", "--batch", "2",
            "--store", str(tmp_path / "runs.db"), "--json"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "insitu" and out["epochs"] == 1
    assert out["loadings"] == out["measurements"] > 0 and out["rig_seconds"] > 0
    assert np.isfinite(out["final_loss"]) and len(out["k_final"]) == net.n_bonds
    assert any(k != 137.5 for k in out["k_final"])  # the boards stepped their stiffness


def test_a_dead_board_on_the_bus_is_named_by_the_gather(bus_lab) -> None:
    net, _, lab, hub = bus_lab
    victim = net.boards[7].id
    lab.boards[victim].power_cut()
    rig = Rig(net, SerialLink(hub.port, bus=True, listen_s=MP_BUS_LISTEN_S),
              configs=board_configs(net, family=lab.family, profile="ideal"), timeout=2.0,
              retries=1)  # fmt: skip
    try:
        with pytest.raises(RigError, match=f"board {victim} .*did not answer identify"):
            rig.connect()
    finally:
        rig.close()
        lab.boards[victim].power_on()


def test_a_babbling_transmitter_on_a_micropython_bus_is_reported(tmp_path: Path) -> None:
    """A transmitter stuck on (bursts back to back): every frame on the line is garbled, the
    boards answer nothing they could read, and the rig's error names the noise it heard."""
    from insitu.emulator.bus import Babbler
    from insitu.resources import network_path

    net = load_network(network_path("li-mao-2024"))
    lab = MicroPythonLab(net, "ideal", 0, bus=True, workdir=tmp_path).start()
    try:
        hub = lab.bus_hub(babbler=Babbler(period_us=2_000, burst_us=2_000))
        rig = Rig(net, SerialLink(hub.port, bus=True), timeout=1.0, retries=1)
        try:
            with pytest.raises(RigError, match="did not answer identify.*unreadable lines"):
                rig.connect()
            assert hub.stats.collisions > 0
        finally:
            rig.close()
    finally:
        lab.stop()
