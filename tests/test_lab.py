"""The emulated lab: real firmware nodes on the world, the gradient they compute, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from insitu.cli.main import main
from insitu.deploy.nodeconfig import expected_hash, node_config
from insitu.emulator.gradcheck import run_gradcheck
from insitu.emulator.inprocess import InProcessLab
from insitu.links import SerialLink
from insitu.network.schema import load_network
from insitu_node.config import from_dict
from insitu_node.protocol import codec

LI_MAO = "hardware/networks/li-mao-2024.toml"


@pytest.fixture(scope="module")
def net(repo_root):
    return load_network(repo_root / LI_MAO)


def _vectors(net):
    load = np.zeros(net.n_nodes * net.dim)
    load[net.index(11) * 2 + 1] = -0.049
    f_adj = np.zeros_like(load)
    f_adj[net.index(13) * 2 + 1] = 1e-3
    f_adj[net.index(14) * 2 + 1] = -5e-4
    return load, f_adj


def test_every_board_config_is_accepted_by_the_firmware(net):
    lab = InProcessLab(net)
    for bd in net.boards:
        cfg = node_config(net, bd, lab.calibration)
        validated, h = from_dict(cfg)
        assert h == expected_hash(cfg)
        assert [tuple(b["bond"]) for b in validated["bonds"]] == [
            net.bond_ids()[b] for b in bd.bonds
        ]


def test_ideal_in_process_gradient_equals_exact(net):
    load, f_adj = _vectors(net)
    res = run_gradcheck(net, load, f_adj, "ideal")
    assert res.rel_err < 1e-9
    assert np.all(np.isfinite(res.insitu))
    # the check is not vacuous: every bond carries a gradient
    assert np.count_nonzero(np.abs(res.exact) > 1e-3 * np.abs(res.exact).max()) > 10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_realistic_gradient_cosine(net, seed):
    load, f_adj = _vectors(net)
    res = run_gradcheck(net, load, f_adj, "realistic", seed=seed)
    assert res.cosine >= 0.99
    assert res.rel_err > 1e-6  # realistic parts are not ideal ones


def test_gradcheck_cli_json(capsys, repo_root):
    rc = main(
        [
            "gradcheck",
            str(repo_root / LI_MAO),
            "--load",
            "11:0,-0.049",
            "--adjoint",
            "13:0,0.001",
            "--adjoint",
            "14:0,-0.0005",
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"bonds", "cosine", "rel_err"}
    assert len(out["bonds"]) == 28
    assert set(out["bonds"][0]) >= {"i", "j", "insitu", "exact"}
    assert out["rel_err"] < 1e-9


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--adjoint", "9:0,0.001"], "node 9 has no board with a force actuator"),
        (["--adjoint", "1:0,0.001"], "node 1 is fixed"),
        (["--adjoint", "13:0"], "expected NODE:FX,FY"),
    ],
)
def test_gradcheck_cli_bad_input(capsys, repo_root, extra, message):
    rc = main(["gradcheck", str(repo_root / LI_MAO), "--load", "11:0,-0.049", *extra])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_emulate_serves_boards_on_serial_ports(repo_root):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "insitu.cli.main",
            "emulate",
            str(repo_root / LI_MAO),
            "--profile",
            "ideal",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=repo_root,
    )
    try:
        header = proc.stdout.readline()
        assert "14 in-process (real time) boards" in header and "(--family emu)" in header
        ports = {}
        for _ in range(14):
            port, board, node = proc.stdout.readline().rstrip("\n").split("\t")
            ports[int(board.split()[1])] = port
        link = SerialLink(ports[11])
        link.send(codec.encode(7, "11", "identify", {}))
        deadline = time.monotonic() + 5
        frame = None
        while frame is None and time.monotonic() < deadline:
            frame = codec.parse(link.receive(1.0) or "")
        assert frame is not None and frame.seq == 7 and frame.args["id"] == "11"
        assert frame.args["bonds"] == [[7, 11], [8, 11]]
        link.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_emulate_virtual_clock_bench_console_and_published_ports(
    repo_root, tmp_path, monkeypatch, capsys
):
    """`insitu emulate --clock virtual`: a 60 s settle answers at once (real time would take a
    minute), the console hangs a weight the boards then feel, and the lab publishes its ports:
    `insitu ports` lists them and `--port auto` reaches them (with their family, emu)."""
    import os

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # this test's labs only
    assert main(["ports", "--only", "--port", "auto"]) == 2  # no lab running yet
    assert "no running `insitu emulate` lab" in capsys.readouterr().err
    proc = subprocess.Popen(
        [sys.executable, "-m", "insitu.cli.main", "emulate", "li-mao-2024",
         "--profile", "ideal", "--clock", "virtual"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=repo_root, env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)},
    )  # fmt: skip
    try:
        assert "in-process (virtual time)" in proc.stdout.readline()
        ports = {}
        for _ in range(14):
            port, board, node = proc.stdout.readline().rstrip("\n").split("\t")
            ports[int(node.split()[1])] = port
        proc.stdin.write("hang 13 nine\nhang 13 5\n")
        proc.stdin.flush()
        assert proc.stdout.readline().startswith("? 'hang 13 nine'")
        assert proc.stdout.readline().strip() == "# 5 g at node 13"
        link = SerialLink(ports[13])  # node 13 carries a displacement sensor
        link.send(codec.encode(3, "13", "measure", {"phase": "free", "settle_ms": 60000}))
        deadline = time.monotonic() + 30
        frame = None
        while (frame is None or frame.seq != 3) and time.monotonic() < deadline:
            frame = codec.parse(link.receive(1.0) or "")
        link.close()
        assert frame is not None and frame.seq == 3, "no reply within 30 s to a 60 s settle"
        assert frame.args["u"][1] < -1e-5  # the 5 g weight pulls node 13 down
        proc.stdin.write("remove 13\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "# nothing at node 13"
        assert main(["ports", "--json", "--timeout", "2"]) == 0
        listed = json.loads(capsys.readouterr().out)["ports"]
        mine = [r for r in listed if "insitu emulate" in r["description"]]
        assert sorted(r["node"] for r in mine) == sorted(str(n) for n in ports)
        argv = ["gradcheck", "li-mao-2024", "--port", "auto", "--load", "11:0,-0.049",
                "--adjoint", "8:0.01,0", "--json"]  # fmt: skip
        assert main(argv) == 0
        assert json.loads(capsys.readouterr().out)["cosine"] > 0.999999
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not list(tmp_path.glob("insitu/emulate-*.json"))  # unpublished when it stops


def test_emulate_a_bus_of_micropython_boards_one_port_and_port_auto(
    repo_root, tmp_path, monkeypatch, capsys
):
    """`insitu emulate --micropython --bus`: the boards are MicroPython processes on one
    emulated RS-485 bus and the lab prints one port, its adapter's; `insitu ports` finds every
    node behind it, and `--port auto` reaches them as a bus (quiet phases) with the listen
    time the lab published."""
    import os

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "insitu.cli.main", "emulate", "li-mao-2024", "--profile",
         "ideal", "--micropython", "--bus"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=repo_root, env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)},
    )  # fmt: skip
    try:
        assert "14 micropython boards" in proc.stdout.readline()
        port, what, boards = proc.stdout.readline().rstrip("\n").split("\t")
        assert what == "bus" and boards.startswith("14 boards")
        assert main(["ports", "--json", "--timeout", "3"]) == 0
        listed = json.loads(capsys.readouterr().out)["ports"]
        assert sorted(int(r["node"]) for r in listed if r["port"] == port) == list(range(1, 15))
        argv = ["gradcheck", "li-mao-2024", "--port", "auto", "--load", "11:0,-0.049",
                "--adjoint", "8:0.01,0", "--json"]  # fmt: skip
        assert main(argv) == 0
        res = json.loads(capsys.readouterr().out)
        assert res["cosine"] > 0.999999
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode == 0


def test_virtual_time_boards_on_ports_give_the_exact_gradient(net):
    """In-process boards served on ptys in virtual time (emulator/ptyserve.py), reached only
    through pyserial as a lab reaches boards: the settle is skipped, not shortened, so the
    gradient is the exact one and the boards' clock shows the phases' full waits."""
    from insitu.calibrate import check_gradient
    from insitu.emulator.ptyserve import PtyServer
    from insitu.rig.lab import port_rig

    load, f_adj = _vectors(net)
    lab = InProcessLab(net, "ideal")
    settle_ms = 2000
    with PtyServer(lab) as server:
        rig = port_rig(net, [server.ports[b] for b in sorted(server.ports)], "emu",
                       profile="ideal", timeout=5.0)  # fmt: skip
        try:
            t0 = lab.clock.now()
            res = check_gradient(rig, load, f_adj, settle_ms=settle_ms, n=2)
            waited = lab.clock.now() - t0
        finally:
            rig.close()
    exact = lab.world.exact_gradient(-f_adj, f=load)
    g = res.insitu
    assert np.linalg.norm(g - exact) / np.linalg.norm(exact) < 1e-9
    assert waited >= 2 * settle_ms / 1000.0  # two phases, each settled in full


def test_ideal_micropython_gradient_equals_exact(net):
    """Real MicroPython processes on ptys, the firmware in their flash, emubus to the world."""
    load, f_adj = _vectors(net)
    res = run_gradcheck(net, load, f_adj, "ideal", micropython=True)
    assert res.rel_err < 1e-9
