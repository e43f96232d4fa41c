"""The voice-coil element end to end: the emulated part realises the stiffness the firmware's
loop sets (flexure once, the loop's own rounding), a coil build's configs, the world against a
time-stepped loop, and `--element` on the commands (issue #12 item 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from insitu.cli.main import main
from insitu.emulator.coil import COIL_SPECS, CoilPart
from insitu.emulator.faults import stuck_element
from insitu.emulator.hardware import get_profile
from insitu.emulator.inprocess import InProcessLab
from insitu.hardware.pinmap import BENCH
from insitu.network.schema import load_network
from insitu.rig.lab import emulated_rig
from insitu_node.hal.coil import VirtualSpring

LI_MAO = "hardware/networks/li-mao-2024.toml"
TARGET = ["--load", "10:0,-0.049", "--load", "12:0,-0.049", "--load", "13:0,-0.049",
          "--load", "14:0,-0.049", "--adjoint", "8:0.01,0", "--adjoint", "2:-0.01,0",
          "--profile", "realistic", "--json"]  # fmt: skip


@pytest.fixture(scope="module")
def net(repo_root):
    return load_network(repo_root / LI_MAO)


def test_profile_names_carry_the_element():
    assert get_profile("realistic+coil").element_kind == "coil"
    assert get_profile("realistic+coil").strain == get_profile("realistic").strain
    assert get_profile("harsh").element_kind == "servo"
    with pytest.raises(ValueError, match="unknown stiffness element 'spring'"):
        get_profile("ideal+spring")


def test_coil_build_configs_and_world_realise_the_commanded_k(net):
    lab = InProcessLab(net, "ideal+coil")
    for cfg in lab.configs.values():
        for b in cfg["bonds"]:
            assert b["element"] == {"type": "coil", "cmd_per_n": BENCH.coil_cmd_per_n,
                                    "max_cmd": 65535, "flex_k": BENCH.flexure_k}  # fmt: skip
    k = lab.world.stiffness()
    # flexure counted once (not 157.5), k rounded by the loop's 15-bit mantissa only
    assert np.all(np.abs(k - net.k_init) < net.k_init * 2.0**-15), k
    # a new k on the nodes reaches the world at its next state, without a loaded tick
    lab2, rig = emulated_rig(net, "ideal+coil")
    want = np.linspace(104.0, 171.0, net.n_bonds)
    rig.set_stiffness(want)
    got = lab2.world.stiffness()
    assert np.all(np.abs(got - want) < want * 2.0**-15), got - want
    rig.close()


def test_realistic_coil_errors_are_the_parts(net):
    lab = InProcessLab(net, "realistic+coil", seed=3)
    k = lab.world.stiffness()
    rel = k / net.k_init - 1
    assert 0.002 < np.std(rel) < 0.06  # 2 % coil scale, 5 % flexure, 1 % gauge gain
    bank = lab.world.coils
    g = bank.gain[0]
    part, sensor = bank.parts[0], lab.world.strain[0]
    assert k[0] == pytest.approx(part.k_flex + g * sensor.gain * part.n_per_cmd)


def test_stuck_coil_keeps_its_stiffness(net):
    lab, rig = emulated_rig(net, "ideal+coil")
    bd = net.boards[0]
    b = bd.bonds[0]
    stuck_element(lab.world, bd.id, 0, True)
    k0 = lab.world.stiffness()[b]
    rig.set_stiffness(np.full(net.n_bonds, 160.0))
    k1 = lab.world.stiffness()
    other = (b + 1) % net.n_bonds
    assert k1[b] == k0 and abs(k1[other] - 160.0) < 0.01
    stuck_element(lab.world, bd.id, 0, False)
    assert abs(lab.world.stiffness()[b] - 160.0) < 0.01
    rig.close()


def test_quasi_static_spring_is_the_time_stepped_loop_fixed_point():
    # one bond: a node of mass m on the flexure + coil, viscous damping, the firmware's own
    # VirtualSpring run at a 10 ms tick on 80 SPS HX711 counts; a 5 g load. Its settled
    # elongation is the quasi-static world's e = F / k_true (to the loop's command rounding).
    part = CoilPart(COIL_SPECS["ideal"], np.random.default_rng(0))
    counts_per_m = 2.0**33
    cmd = [0]
    vs = VirtualSpring(BENCH.coil_cmd_per_n, 65535, lambda c: cmd.__setitem__(0, c),
                       flex_k=BENCH.flexure_k)  # fmt: skip
    vs.set_k(137.5, 1.0 / counts_per_m, 0)
    k_true = part.true_k(-vs._m / (1 << vs._s), counts_per_m)
    m, zeta, f = 0.03, 0.7, 0.049
    c_damp = 2 * zeta * np.sqrt(137.5 * m)
    x = v = 0.0
    dt = 1e-4
    sample = 0
    for i in range(int(3.0 / dt)):
        t = i * dt
        if t >= sample / 80.0:  # a new conversion; the loop runs at its next 10 ms tick
            sample += 1
            held = int(round(x * counts_per_m))
        if i % 100 == 0:
            vs.control(held)
        force = f - part.k_flex * x + cmd[0] * part.n_per_cmd - c_damp * v
        v += force / m * dt
        x += v * dt
    assert x == pytest.approx(f / k_true, rel=2e-4), (x, f / k_true)


@pytest.mark.parametrize("element", ["coil", "servo"])
def test_gradcheck_target_cosine(capsys, repo_root, element):
    rc = main(["gradcheck", str(repo_root / LI_MAO), *TARGET, "--element", element])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cosine"] >= 0.999, out["cosine"]


def test_element_flag_is_on_every_command(capsys, repo_root):
    for cmd in (["train"], ["emulate"], ["demo"], ["gradcheck"], ["check"]):
        with pytest.raises(SystemExit):
            main([*cmd, "--help"])
        assert "--element {servo,coil}" in capsys.readouterr().out, cmd
    rc = main(["gradcheck", str(repo_root / LI_MAO), *TARGET, "--element", "coil",
               "--micropython"])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in-process boards only" in err[0]


def test_a_coil_build_on_a_pico_keeps_the_flexure_once(net, repo_root):
    from insitu.deploy.nodeconfig import node_config
    from insitu.hardware.pinmap import apply_pins, bench_calibration, load_pinmap
    from insitu_node.config import from_dict

    pm = load_pinmap(repo_root / "hardware" / "boards" / "pico.toml")
    bd = next(b for b in net.boards if 0 < len(b.bonds) <= pm.max_bonds("coil"))
    cfg = apply_pins(node_config(net, bd, bench_calibration(), family="rp2"), pm, "coil")
    for b in from_dict(cfg)[0]["bonds"]:
        assert b["element"]["flex_k"] == BENCH.flexure_k and b["element"]["type"] == "coil"


def test_saturation_is_listed_beyond_full_duty_only(net):
    lab = InProcessLab(net, "ideal+coil")
    w = lab.world
    dof = next(iter(w.force_parts))
    w.command_force(dof, -0.049 * w.nominal.force_cmd_per_n)  # 5 g: far inside full duty
    assert w.coils.saturated() == []
    w.command_force(dof, -10.0 * w.nominal.force_cmd_per_n)  # 10 N: past 0.625 N per coil
    assert w.coils.saturated()
