"""Boards on one emulated RS-485 bus (emulator/bus.py, the firmware's hal/bus.py drop, the
rig's quiet phases): the same gradient as on separate links, O(1) frames per phase, and the
bus's faults — a dead board, a babbling one, a refusal heard in silence, a reboot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from insitu.bench.host import lattice
from insitu.cli.main import main
from insitu.deploy.nodeconfig import bus_slots
from insitu.emulator.bus import Babbler, BusTiming
from insitu.emulator.gradcheck import exact_batch_gradient
from insitu.emulator.inprocess import InProcessLab
from insitu.network.schema import load_network
from insitu.rig.lab import expected_configs
from insitu.rig.session import Refused, Rig, RigError, RigReboot
from insitu.trainers.insitu import Phases, accumulate_batch

ROOT = Path(__file__).resolve().parents[1]


def _rig(net, bus: bool, **kw):
    lab = InProcessLab(net, profile="ideal", seed=0)
    link = lab.bus(**kw) if bus else lab.link()
    rig = Rig(net, link, configs=expected_configs(net, lab.calibration), seq_start=1)
    return lab, link, rig


def _batch(rig, net, rng):
    io = net.io_set("default")
    X = -rng.uniform(0.01, 0.049, size=(3, len(io.inputs)))
    y = np.zeros((3, len(io.outputs)))

    def loss_grad(u, target):
        d = (u - target) * 1e3
        return float(np.mean(d**2)), 2e3 * d / d.size

    accumulate_batch(rig, io.inputs, io.outputs, X, y, loss_grad, Phases())
    return X, y, loss_grad


def test_slots_unique_sensor_boards_first() -> None:
    net = load_network(ROOT / "hardware/networks/li-mao-2024.toml")
    slots = bus_slots(net)
    assert sorted(slots.values()) == list(range(len(net.boards)))
    first = [bd for bd in net.boards if "displacement" in bd.carries]
    assert {slots[bd.id] for bd in first} == set(range(len(first)))


def test_gradient_on_a_bus_equals_separate_links_and_the_exact_one() -> None:
    net = lattice(60)
    grads = []
    for bus in (False, True):
        lab, link, rig = _rig(net, bus)
        rig.connect()
        rig.forces_off()
        X, y, loss_grad = _batch(rig, net, np.random.default_rng(3))
        g, count = rig.accumulated()
        assert count == 3
        grads.append(g)
        if bus:
            exact = exact_batch_gradient(lab.world, net, "default", X, y, loss_grad)
        rig.update(rule="adjoint", lr=0.1, opt="sgd", batch=3)
    np.testing.assert_array_equal(grads[0], grads[1])
    scale = np.max(np.abs(exact))
    np.testing.assert_allclose(grads[1] / 3, exact, rtol=0, atol=1e-9 * scale)


def test_bus_frames_per_phase_do_not_grow_with_boards(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "host", "--bus", "--sizes", "10,100", "--steps", "1", "--batch", "2"]
    assert main([*argv, "--json", "--out", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    small, large = result["bus"]
    assert large["boards"] > 5 * small["boards"]
    for key in ("host_frames_per_step", "board_frames_per_step"):
        assert small[key] == large[key]
    assert small["collisions"] == large["collisions"] == small["retries"] == 0
    assert large["replies_kept_quiet_per_step"] > small["replies_kept_quiet_per_step"]
    assert 0 < large["wire_s_per_step"] < 0.1 * large["floor_s_per_step"]
    assert (tmp_path / "host-bus.png").read_bytes()[:4] == b"\x89PNG"
    assert "wire/floor" in (tmp_path / "host-bus.md").read_text()


def test_a_dead_board_is_found_by_the_gather_at_connect() -> None:
    net = lattice(10)
    lab, link, rig = _rig(net, True, dead=(net.boards[4].id,))
    with pytest.raises(RigError, match=f"board {net.boards[4].id} .*did not answer identify"):
        rig.connect()


def test_a_refusal_of_a_quiet_request_is_heard() -> None:
    net = lattice(10)
    lab, link, rig = _rig(net, True)
    rig.connect()
    # nothing accumulated: every board refuses the quiet update out loud
    with pytest.raises(Refused, match="refused update: rule: no samples accumulated"):
        rig.update(rule="adjoint", lr=0.1, batch=1)


def test_a_reboot_is_heard_by_its_boot_announcement() -> None:
    net = lattice(10)
    lab, link, rig = _rig(net, True)
    rig.connect()
    rig.forces_off()
    lab.reboot(net.boards[2].id)
    with pytest.raises(RigReboot) as e:
        rig.measure("forward", tag=1)
    assert e.value.boards == [str(net.boards[2].id)]


def test_a_babbling_board_garbles_frames_and_the_rig_says_so() -> None:
    net = lattice(10)
    # bursts now and then: collisions, retries, and the work still gets done
    lab, link, rig = _rig(net, True, babbler=Babbler(period_us=40_000, burst_us=200))
    rig.connect()
    rig.forces_off()
    _batch(rig, net, np.random.default_rng(0))
    assert link.stats.collisions > 0 and rig.counters.corrupt > 0
    # a transmitter stuck on: nothing gets through, and the error names the noise
    lab, link, rig = _rig(net, True, babbler=Babbler(period_us=1_000, burst_us=1_000))
    rig.timeout = 0.1  # wall seconds of garbage per attempt
    with pytest.raises(RigError, match="did not answer identify.*unreadable lines .*babbling"):
        rig.connect()


def test_line_time_follows_the_baud_rate() -> None:
    t = BusTiming(baud=1_000_000)
    assert t.frame_us("x" * 99) == 1000  # 100 bytes of 10 bits at 1 Mbaud
    assert BusTiming(baud=115_200).frame_us("x" * 99) == 8681


def test_a_phase_on_a_bus_ends_when_no_board_is_still_measuring() -> None:
    """Settle until still (calm): each board decides when to sample, so boards without
    sensors can finish after the output boards have reported. The rig then asks quietly
    (`~ping`, answered by busy boards only) until none is busy: when measure returns, no
    board is measuring, so the next phase's forces cannot land in a measurement."""
    from insitu.network.schema import Port
    from insitu.resources import network_path

    net = load_network(network_path("li-mao-2024"))
    lab = InProcessLab(net, profile="realistic", seed=0)
    rig = Rig(net, lab.bus(), configs=expected_configs(net, lab.calibration), seq_start=1)
    rig.connect()
    rig.forces_off()
    busy_seen = []
    plain = rig.broadcast

    def watch(op, args=None, timeout=None, speakers=None):
        r = plain(op, args, timeout, speakers)
        if op == "ping" and speakers is not None:
            busy_seen.append(sorted(a for a, p in r.items() if p.get("busy")))
        return r

    rig.broadcast = watch
    for tag, f in enumerate((-0.04, -0.02), 1):
        rig.apply_forces({Port(11, 1): f})
        rig.measure("forward", tag=tag, settle_ms=2000, calm=10000)
        assert not lab._busy()  # every board done before the rig moves on
        assert busy_seen[-1] == []  # the last quiet ping heard nobody
    assert any(busy_seen[:-1])  # and before it some board was still settling
