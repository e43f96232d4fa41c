"""Deploy: the real `mpremote` and `insitu flash` against emulated MicroPython boards.

The boards are `MicroPythonLab(..., install=False)` boards: real `micropython` processes on
pseudo-terminals with an empty flash, exactly what a new board looks like to mpremote. The
tests need the `micropython` and `mpremote` commands (installed into .venv by `make test`);
when they are missing the tests FAIL, never skip.

Shows: (1) mpremote copies files, execs and resets a board and the host's SerialLink then
talks to the firmware; (2) `insitu flash --all` flashes the 14 li-mao-2024 boards (ports
matched by unique id), a re-flash skips every unchanged file, a Rig connects over the same
ptys (config hashes verified) and an in-situ batch runs through them with the exact
gradient; (3) unknown port, missing board and the wrong board are each one line on stderr
with exit status 2 and nothing written; (4) `--check` names what differs (files by sha256,
config hash, firmware, bonds) and writes nothing: exit 0 identical, 1 different; (5) boards
without a valid config or that do not answer identify are re-flashed without --force, a failed
flash prints the node's config error, --force is needed only for a board of another node.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from insitu.cli.main import main
from insitu.deploy.discovery import identify_port
from insitu.deploy.flash import FIRMWARE_DIR, firmware_files
from insitu.deploy.nodeconfig import config_text, expected_hash
from insitu.emulator.gradcheck import exact_batch_gradient
from insitu.emulator.mpboard import find_executable
from insitu.emulator.mplab import MicroPythonLab
from insitu.links import SerialLink
from insitu.network.schema import Network, load_network
from insitu.resources import networks_dir
from insitu.rig.lab import board_configs, expected_configs
from insitu.rig.session import Rig, RigError
from insitu.trainers.insitu import Phases, accumulate_batch
from insitu_node import VERSION
from insitu_node.protocol import codec

LI_MAO = networks_dir() / "li-mao-2024.toml"
TIMINGS: dict[str, float] = {}  # measured flash times, printed by the last test (-s to see)


@pytest.fixture(scope="module")
def mpremote() -> str:
    return find_executable("mpremote")  # FileNotFoundError = failure, on purpose


@pytest.fixture(scope="module")
def net() -> Network:
    return load_network(LI_MAO)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _flash_one(
    capsys: pytest.CaptureFixture[str], port: str, *extra: str, network: Path = LI_MAO
) -> tuple[int, str, str]:
    """`insitu flash NETWORK --node 3 --family emu EXTRA --port PORT`."""
    argv = ["flash", str(network), "--node", "3", "--family", "emu", *extra, "--port", port]
    return _cli(capsys, *argv)


def _flash_all(
    capsys: pytest.CaptureFixture[str],
    lab: MicroPythonLab,
    *extra: str,
    network: Path = LI_MAO,
    ports: list[str] | None = None,
    maps: list[str] | None = None,
) -> tuple[int, str, str]:
    """`insitu flash NETWORK --all --family emu EXTRA` with every board's --port and --map."""
    ports = _ports(lab) if ports is None else ports
    maps = _maps(lab) if maps is None else maps
    return _cli(capsys, "flash", str(network), "--all", "--family", "emu", *extra, *ports, *maps)


def _ports(lab: MicroPythonLab, ids: list[int] | None = None) -> list[str]:
    out = []
    for bid, b in lab.boards.items():
        if ids is None or bid in ids:
            out += ["--port", b.port]
    return out


def _maps(lab: MicroPythonLab) -> list[str]:
    out = []
    for bid, b in lab.boards.items():
        out += ["--map", f"{b.unique_id_hex}={bid}"]
    return out


BOOT_COUNTER = ("boots.txt", "boots.txt.tmp")  # the firmware itself rewrites these at boot


def _flash_state(
    lab: MicroPythonLab, skip: tuple[str, ...] = ()
) -> dict[int, dict[str, tuple[str, int]]]:
    """Every file in every board's flash (but ``skip``): sha256 and mtime (ns)."""
    state = {}
    for bid, b in lab.boards.items():
        files = {}
        for p in sorted(b.flash_dir.rglob("*")):
            if p.is_file() and p.name not in skip:
                st = p.stat()
                files[p.relative_to(b.flash_dir).as_posix()] = (
                    hashlib.sha256(p.read_bytes()).hexdigest(),
                    st.st_mtime_ns,
                )
        state[bid] = files
    return state


def _boots(lab: MicroPythonLab) -> dict[int, int]:
    return {bid: sum(e.kind == "boot" for e in b.events) for bid, b in lab.boards.items()}


def _one_line_error(rc: int, err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("insitu "), lines[0]
    assert ": error: " in lines[0]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ (1) plain mpremote


def test_mpremote_copies_execs_resets_then_the_serial_link_talks(net, mpremote, tmp_path):
    """The real mpremote command on an empty board: copy the firmware and a config (cp -r,
    cp), exec on the board, reset; then the host's pyserial link gets identify answered."""
    lab = MicroPythonLab(net, "ideal", workdir=tmp_path / "lab", boards=[3], install=False)
    lab.start(wait=0)
    try:
        board = lab.boards[3]
        cfg_file = tmp_path / "config.json"
        cfg_file.write_text(config_text(lab.configs[3]))

        def mp(*args: str) -> str:
            r = subprocess.run(
                [mpremote, "connect", board.port, *args], capture_output=True, text=True, timeout=60
            )
            assert r.returncode == 0, r.stderr + r.stdout
            return r.stdout

        mp(
            "fs",
            "cp",
            "-r",
            str(FIRMWARE_DIR / "insitu_node"),
            ":.",
            "+",
            "fs",
            "cp",
            str(FIRMWARE_DIR / "main.py"),
            ":main.py",
            "+",
            "fs",
            "cp",
            str(cfg_file),
            ":config.json",
        )
        for rel in firmware_files():
            assert (board.flash_dir / rel).read_bytes() == (FIRMWARE_DIR / rel).read_bytes()
        out = mp(
            "exec", "import insitu_node, os; print(insitu_node.VERSION, 'main.py' in os.listdir())"
        )
        assert out.split() == [VERSION, "True"]
        n = len(board.events)
        mp("reset")
        board.wait_event(lambda e: e.kind == "boot" and e.detail == "soft", start=n)

        link = SerialLink(board.port)
        try:
            deadline = time.monotonic() + 20
            reply = None
            while reply is None and time.monotonic() < deadline:
                link.send(codec.encode(7, "*", "identify", {}))
                t_end = time.monotonic() + 0.5
                while time.monotonic() < t_end:
                    line = link.receive(0.1)
                    if line and line.startswith("@1 7 "):
                        reply = codec.decode(line)
                        break
            assert reply is not None, board.transcript()[-500:]
            assert reply.op == "ok"
            assert reply.args["id"] == "3"
            assert reply.args["fw"] == VERSION
            assert reply.args["cfg"] == expected_hash(lab.configs[3])
            assert reply.args["uid"] == board.unique_id_hex
        finally:
            link.close()
    finally:
        lab.stop()


# ------------------------------------------------------------------ (2) insitu flash


@pytest.fixture(scope="module")
def lab(net, tmp_path_factory):
    """All 14 li-mao-2024 boards with an empty flash (ideal profile)."""
    lab = MicroPythonLab(net, "ideal", workdir=tmp_path_factory.mktemp("lab"), install=False)
    lab.start(wait=0)
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def flashed(lab):
    """`insitu flash --all` on the empty boards; the --json summary and the wall time."""
    t0 = time.monotonic()
    rc = main(
        # 4 at a time: 14 interpreters plus 8 mpremotes at once starve a 2-core CI machine
        ["flash", str(LI_MAO), "--all", "--family", "emu", "--json", "--jobs", "4",
         *_ports(lab), *_maps(lab)]  # fmt: skip
    )
    TIMINGS["flash --all, 14 empty boards"] = time.monotonic() - t0
    assert rc == 0
    return lab


def test_flash_all_reflash_skips_then_a_rig_trains_through_the_same_ptys(net, flashed, capsys):
    lab = flashed
    # what flash wrote is exactly the firmware tree + the lab's own config for each board
    for bid, b in lab.boards.items():
        for rel in firmware_files():
            assert (b.flash_dir / rel).read_bytes() == (FIRMWARE_DIR / rel).read_bytes()
        assert (b.flash_dir / "config.json").read_text() == config_text(lab.configs[bid])

    # re-flash all boards: every file is unchanged and skipped; boards come back and verify
    t0 = time.monotonic()
    rc, out, err = _flash_all(capsys, lab, "--json", "--jobs", "4")  # as the fixture: 2 cores
    TIMINGS["re-flash --all, 14 boards, nothing changed"] = time.monotonic() - t0
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["ok"] and len(summary["boards"]) == 14
    n_files = len(firmware_files()) + 1
    for b in summary["boards"]:
        assert b["copied"] == [] and len(b["skipped"]) == n_files, b
        assert b["config"] == expected_hash(lab.configs[b["board"]])
        assert b["uid"] == lab.boards[b["board"]].unique_id_hex
        assert b["mpremote_calls"] == 2  # probe, then reset (no copy needed)

    # one board, human-readable output: one line for the board with copied/skipped + result
    t0 = time.monotonic()
    rc, out, err = _flash_one(capsys, lab.boards[3].port)
    TIMINGS["re-flash --node 3"] = time.monotonic() - t0
    assert rc == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("[1/1] board 3 (node 3)"))
    assert f"copied 0 file(s) (0.0 KiB), skipped {n_files} unchanged" in line
    assert f"ok: node 3, firmware {VERSION}, config {expected_hash(lab.configs[3])}" in line

    # the configs flash generates are the ones the session expects for these boards
    configs = expected_configs(net, lab.calibration)
    assert board_configs(net, family="emu", profile="ideal") == configs

    links = [SerialLink(p) for p in lab.ports().values()]
    rig = Rig(net, links, configs=configs, timeout=3.0)
    try:
        infos = rig.connect()
        assert {i.config_hash for i in infos.values()} == {
            expected_hash(c) for c in configs.values()
        }
        assert {i.uid for i in infos.values()} == {b.unique_id_hex for b in lab.boards.values()}
        rig.tare()
        io = net.io_set("iris")
        rng = np.random.default_rng(5)
        B = 3
        X = -rng.uniform(0.0, 0.049, (B, len(io.inputs)))
        Y = rng.uniform(-1e-4, 1e-4, (B, len(io.outputs)))

        def loss_grad(u: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
            return float(np.sum((u - t) ** 2)), 2.0 * (u - t)

        k0 = rig.stiffness()
        res = accumulate_batch(rig, io.inputs, io.outputs, X, Y, loss_grad, Phases())
        assert res.loadings == 2 * B and np.isfinite(res.loss)
        g_sum, count = rig.accumulated()
        assert count == B
        exact = exact_batch_gradient(lab.world, net, "iris", X, Y, loss_grad)
        # single-precision-free unix port, ideal sensors: the boards' gradient is exact
        rel = np.linalg.norm(g_sum / count - exact) / np.linalg.norm(exact)
        assert rel < 1e-6
        lr = 0.2 * 137.5 / np.max(np.abs(exact))  # a step of at most 20 % of k
        rep = rig.update(rule="adjoint", lr=lr, opt="sgd", batch=B)
        k1 = rig.stiffness()
        want = np.clip(k0 - lr * exact, net.k_min, net.k_max)
        assert np.allclose(k1, want, rtol=1e-6, atol=1e-6)
        assert rep.max_dk == pytest.approx(np.max(np.abs(want - k0)), rel=1e-6)
    finally:
        rig.close()


# ------------------------------------------------------------------ (3) errors


@pytest.fixture
def untouched(flashed):
    """Asserts that the test leaves every board's flash and boot count as it found them."""
    lab = flashed
    before, boots = _flash_state(lab), _boots(lab)
    yield lab
    assert _flash_state(lab) == before, "a board's flash was written"
    assert _boots(lab) == boots, "a board was reset"


@pytest.fixture
def unwritten(flashed):
    """`--check`: asserts that nothing was written to any board's flash. The probe interrupts
    main.py, so a check resets each board it looked at, whose firmware then counts the boot."""
    lab = flashed
    before = _flash_state(lab, skip=BOOT_COUNTER)
    yield lab
    assert _flash_state(lab, skip=BOOT_COUNTER) == before, "a board's flash was written"


def test_unknown_port_is_one_line_exit_2(untouched, capsys):
    lab = untouched
    bad = "/dev/insitu-no-such-port"
    rc, _, err = _flash_one(capsys, bad)
    _one_line_error(rc, err, "cannot open port", bad)
    rc, _, err = _flash_all(capsys, lab, ports=[*_ports(lab), "--port", bad])
    _one_line_error(rc, err, bad)
    rc, _, err = _cli(capsys, "ports", "--only", "--port", bad)
    _one_line_error(rc, err, bad)


def test_missing_board_is_one_line_exit_2(untouched, capsys):
    lab = untouched
    ids = [bid for bid in lab.boards if bid != 5]
    for extra in ((), ("--check",)):
        rc, _, err = _flash_all(capsys, lab, *extra, ports=_ports(lab, ids))
        _one_line_error(rc, err, "board 5 (node 5)", lab.boards[5].unique_id_hex, "none of")
    # boards are matched by unique id, so no unique id for a board is an error, not a guess
    maps = _maps(lab)
    i = maps.index(f"{lab.boards[7].unique_id_hex}=7")
    rc, _, err = _flash_all(capsys, lab, maps=maps[: i - 1] + maps[i + 1 :])
    _one_line_error(rc, err, "board 7 (node 7) has no unique id", "--map")


def test_the_wrong_board_on_a_port_is_refused_before_writing(untouched, capsys):
    lab = untouched
    rc, _, err = _flash_one(capsys, lab.boards[4].port, *_maps(lab))
    _one_line_error(rc, err, lab.boards[4].unique_id_hex, "(board 4 (node 4))", "board 3")


def _check_lines(out: str) -> dict[int, str]:
    """`--check` output: board id -> its line."""
    lines = {}
    for ln in out.splitlines():
        if ln.startswith("[") and "] board " in ln:
            lines[int(ln.split("] board ")[1].split()[0])] = ln
    return lines


def test_network_file_that_does_not_match_the_boards(unwritten, capsys, tmp_path, net):
    lab = unwritten
    text = LI_MAO.read_text()
    # bond 10-13 moves from board 13 to board 10: both boards' bonds and configs differ
    moved = tmp_path / "moved.toml"
    old = "{ nodes = [10, 13], board = 13 }"
    assert old in text
    moved.write_text(text.replace(old, "{ nodes = [10, 13], board = 10 }"))
    other = load_network(moved)
    for bid in (10, 13):
        port = lab.boards[bid].port
        rc, out, err = _cli(capsys, "flash", str(moved), "--node", str(bid), "--family", "emu",
                            "--port", port, "--check")  # fmt: skip
        assert rc == 1, err
        line = _check_lines(out)[bid]
        want = expected_hash(board_configs(other, family="emu")[bid])
        have = expected_hash(lab.configs[bid])
        assert f"differs: 1 file(s) differ: config.json; config {have} on the board, " in line
        assert f"{want} would be flashed" in line and "owns bonds" in line
        assert "1 of 1 board(s) differ" in out
    # the emulator's realistic calibration instead of the ideal one: every config hash differs
    rc, out, err = _flash_one(capsys, lab.boards[3].port, "--profile", "realistic", "--check")
    assert rc == 1, err
    (line,) = _check_lines(out).values()
    assert "differs: 1 file(s) differ: config.json; config " in line
    assert "owns bonds" not in line
    # the session refuses them the same way
    links = [SerialLink(p) for p in lab.ports().values()]
    rig = Rig(other, links, configs=expected_configs(other, lab.calibration), timeout=3.0)
    try:
        with pytest.raises(RigError, match="owns bonds"):
            rig.connect()
    finally:
        rig.close()
    # and the matching file passes the check: every file of every board by sha256
    t0 = time.monotonic()
    rc, out, err = _flash_all(capsys, lab, "--check", "--json", "--jobs", "4")
    TIMINGS["--check --all, 14 boards, 4 at a time"] = time.monotonic() - t0
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["identical"] and len(summary["boards"]) == 14
    for b in summary["boards"]:
        assert b["identical"] and b["same"] == len(firmware_files()) + 1, b
        assert b["config"] == b["config_on_board"] == expected_hash(lab.configs[b["board"]])


def test_wrong_firmware_version(flashed, capsys, mpremote, tmp_path, net):
    """A board flashed with another VERSION (with plain mpremote): --check names the file and
    the version and writes nothing (exit 1); a firmware tree of another version is refused
    before any write; then insitu flash repairs the board by copying just the one file."""
    lab = flashed
    board = lab.boards[3]
    init = (FIRMWARE_DIR / "insitu_node" / "__init__.py").read_text()
    old = tmp_path / "__init__.py"
    old.write_text(init.replace(f'VERSION = "{VERSION}"', 'VERSION = "0.0.9"'))
    r = subprocess.run(
        [
            mpremote,
            "connect",
            board.port,
            "fs",
            "cp",
            str(old),
            ":insitu_node/__init__.py",
            "+",
            "reset",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    ident = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rep = identify_port(board.port, attempts=1)
        if rep.identities:
            ident = rep.identities[0]
            break
    assert ident is not None and ident.firmware == "0.0.9"

    before = _flash_state(lab, skip=BOOT_COUNTER)
    rc, out, err = _flash_one(capsys, board.port, "--check")
    assert rc == 1, err
    (line,) = _check_lines(out).values()
    assert "differs: 1 file(s) differ: insitu_node/__init__.py" in line
    assert f"runs firmware 0.0.9, expected {VERSION}" in line
    assert "config " not in line.split("differs:")[1]  # its config is the one flash writes
    # a firmware tree of another version: refused before touching any board
    tree = tmp_path / "fw"
    for rel in firmware_files():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes((FIRMWARE_DIR / rel).read_bytes())
    (tree / "main.py").write_bytes((FIRMWARE_DIR / "main.py").read_bytes())
    (tree / "insitu_node" / "__init__.py").write_text(old.read_text())
    boots = _boots(lab)
    rc, _, err = _flash_one(capsys, board.port, "--firmware", str(tree))
    _one_line_error(rc, err, "version 0.0.9", "host speaks " + VERSION)
    assert _boots(lab) == boots
    # the session refuses the board too
    links = [SerialLink(p) for p in lab.ports().values()]
    rig = Rig(net, links, configs=expected_configs(net, lab.calibration), timeout=3.0)
    try:
        with pytest.raises(RigError, match="runs firmware 0.0.9"):
            rig.connect()
    finally:
        rig.close()
    assert _flash_state(lab, skip=BOOT_COUNTER) == before

    rc, out, err = _flash_one(capsys, board.port, "--json")
    assert rc == 0, err
    (b,) = json.loads(out)["boards"]
    assert b["ok"] and b["copied"] == ["insitu_node/__init__.py"]
    assert len(b["skipped"]) == len(firmware_files())
    rc, out, err = _flash_one(capsys, board.port, "--check")
    assert rc == 0, err
    assert "identical: " in _check_lines(out)[3]


def test_zz_report_flash_times(flashed):
    """Not an assertion on time (tests never do): the measured times, for `pytest -s`."""
    for what, t in TIMINGS.items():
        print(f"\n{what}: {t:.1f} s", end="")
    assert TIMINGS


def test_a_board_whose_watchdog_runs_is_reset_before_the_copy(net, tmp_path, capsys):
    """DESIGN §5: a started watchdog cannot be stopped and mpremote's interrupt stops main.py
    feeding it. The probe sees wdt.enable in the board's config, so flash resets the board
    first and copies inside the boot grace period; no watchdog reset happens during the copy."""
    lab = MicroPythonLab(net, "ideal", workdir=tmp_path / "lab", boards=[3], install=True)
    board = lab.boards[3]
    cfg = dict(lab.configs[3], wdt={"enable": True, "timeout_ms": 2000, "grace_ms": 3000})
    (board.flash_dir / "config.json").write_text(config_text(cfg))
    lab.start()
    try:
        board.wait_event("wdt", timeout=30)  # the firmware started its watchdog after grace
        n = len(board.events)
        rc, out, err = _flash_one(capsys, board.port, "--json", "--force")  # copy every file
        assert rc == 0, err
        (b,) = json.loads(out)["boards"]
        assert b["ok"] and len(b["copied"]) == len(firmware_files()) + 1, b
        assert any("watchdog enabled" in note for note in b["notes"])
        assert b["mpremote_calls"] >= 2  # probe, copy + reset
        # from the reset before the copy to the reset after it no watchdog runs (measured
        # without the rule: the watchdog reset the board in the middle of the flash)
        during = board.events[n:]
        resets = [i for i, e in enumerate(during) if e.kind == "boot" and e.detail == "soft"]
        assert len(resets) >= 2, during  # machine.reset() before the copy and after it
        copy = during[resets[-2] : resets[-1]]
        assert not [e for e in copy if e.kind == "wdt" or e.detail == "wdt"], copy
        assert json.loads((board.flash_dir / "config.json").read_text()).get("wdt") is None
    finally:
        lab.stop()


# ------------------------------------------------------------------ (5) broken boards, --force


def test_boards_without_a_valid_config_reflash_without_force(net, tmp_path, capsys, mpremote):
    """No unique ids recorded (the lab's first flash). A board with no config, with a config
    its firmware rejects, or whose firmware does not answer identify runs no node, so
    re-flashing it needs no --force; a flash whose config the node rejects FAILS with the
    node's own config error; --force is needed only for a board that runs another node."""
    lab = MicroPythonLab(net, "ideal", workdir=tmp_path / "lab", boards=[3], install=False)
    board = lab.boards[3]
    lab.start(wait=0)  # an empty flash: MicroPython, nothing of ours

    def mp(*args: str) -> None:
        r = subprocess.run(
            [mpremote, "connect", board.port, *args], capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 0, r.stderr

    def put(name: str, data: str) -> None:
        """Write one file to the board with plain mpremote and reset it."""
        src = tmp_path / name.replace("/", "_")
        src.write_text(data)
        mp("fs", "cp", str(src), f":{name}", "+", "reset")

    def answer() -> object:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rep = identify_port(board.port, attempts=1)
            if rep.identities:
                return rep.identities[0]
        raise AssertionError(board.transcript()[-500:])

    def flash_ok(*extra: str) -> str:
        rc, out, err = _flash_one(capsys, board.port, *extra)
        assert rc == 0, err
        line = next(ln for ln in out.splitlines() if ln.startswith("[1/1] board 3 (node 3)"))
        assert f"ok: node 3, firmware {VERSION}, config {expected_hash(lab.configs[3])}" in line
        return line

    try:
        # (0) an empty board: --check lists what is missing (shortened), flash fills it
        n_files = len(firmware_files()) + 1
        rc, out, err = _flash_one(capsys, board.port, "--check")
        assert rc == 1, err
        line = _check_lines(out)[3]
        assert f"differs: {n_files} missing: main.py, insitu_node/__init__.py, " in line, line
        assert f"({n_files - 3} more); no answer to identify" in line, line
        assert f"copied {n_files} file(s)" in flash_ok()

        # (a) no config: `insitu ports` shows the node's config error; flash needs no --force
        mp("fs", "rm", ":config.json", "+", "reset")
        assert answer().config_error == "missing config.json"
        rc, out, _ = _cli(capsys, "ports", "--only", "--port", board.port)
        assert rc == 0 and "config error: missing config.json" in out, out
        flash_ok()

        # (b) a config the node rejects, from flash itself (an esp32 config on this board):
        # the FAILED line carries the node's config error, as identify reports it
        rc, out, err = _flash_one(capsys, board.port, "--family", "esp32")
        assert rc == 1, err
        ident = answer()
        assert ident.address == "unconfigured" and ident.config_error
        line = next(ln for ln in out.splitlines() if ln.startswith("[1/1] board 3"))
        assert f"FAILED: rejects its config.json: {ident.config_error}" in line
        assert f"rejects its config.json: {ident.config_error}" in err.strip().splitlines()[-1]
        flash_ok()  # and it is repaired without --force

        # (c) a config that fails the firmware's validation (written by hand): --check says
        # what differs, ports shows the error, flash repairs it without --force
        bad = dict(lab.configs[3])
        bad["bonds"] = [dict(bad["bonds"][0], k_max=bad["bonds"][0]["k_min"])] + bad["bonds"][1:]
        put("config.json", config_text(bad))
        assert "not above k_min" in (answer().config_error or "")
        rc, out, err = _flash_one(capsys, board.port, "--check")
        assert rc == 1, err
        line = _check_lines(out)[3]
        assert "1 file(s) differ: config.json" in line and "not above k_min" in line, line
        rc, out, _ = _cli(capsys, "ports", "--only", "--port", board.port)
        assert "config error: " in out and "not above k_min" in out, out
        assert flash_ok().count("copied 1 file(s)") == 1  # only config.json

        # (d) firmware that does not answer identify (main.py fails at boot)
        put("main.py", "import insitu_node.missing_module\n")  # an incomplete deploy
        assert not identify_port(board.port, attempts=2).identities
        rc, out, err = _flash_one(capsys, board.port, "--check")
        assert rc == 1, err
        line = _check_lines(out)[3]
        assert "1 file(s) differ: main.py" in line and "no answer to identify" in line, line
        assert "copied 1 file(s)" in flash_ok()

        # (e) a board that runs another node's config: --force, and only then
        as_4 = ["flash", str(LI_MAO), "--node", "4", "--family", "emu", "--port", board.port]
        rc, _, err = _cli(capsys, *as_4)
        _one_line_error(rc, err, "runs node 3", "re-purpose", "--force")
        rc, _, err = _cli(capsys, *as_4, "--force")
        assert rc == 0, err
        assert answer().address == "4"
        rc, _, err = _flash_one(capsys, board.port)
        _one_line_error(rc, err, "runs node 4", "re-purpose", "--force")
        flash_ok("--force")
    finally:
        lab.stop()


# ------------------------------------------------------------------ (6) bus drops


def test_flash_bus_makes_a_quiet_drop_and_flash_without_it_brings_it_back(net, tmp_path, capsys):
    """--bus writes the board's bus.json (its slot; an emu board's drop is its console): the
    firmware then keeps quiet requests' ok replies to itself. Flashing without --bus removes
    bus.json: the board answers every request again."""
    from insitu.deploy.nodeconfig import bus_slots
    from insitu.links import SerialLink
    from insitu_node.protocol import codec

    lab = MicroPythonLab(net, "ideal", workdir=tmp_path / "lab", boards=[3], install=False)
    board = lab.boards[3]
    lab.start(wait=0)
    try:
        rc, out, err = _flash_one(capsys, board.port, "--bus", "--json")
        assert rc == 0, err
        (b,) = json.loads(out)["boards"]
        assert b["ok"] and "bus.json" in b["copied"], b
        bus = json.loads((board.flash_dir / "bus.json").read_text())
        assert bus == {"slot": bus_slots(net)[3], "gap_us": 20}
        board.wait_output(b'"ev":"boot"', start=0, timeout=30)
        link = SerialLink(board.port)
        try:
            link.send("~" + codec.encode(7, "*", "ping", {}))  # quiet: nothing to say
            link.send(codec.encode(8, "*", "ping", {}))  # plain: answered
            got = [codec.parse(x) for x in iter(lambda: link.receive(2.0), None)]
            seqs = [f.seq for f in got if f is not None and f.op == "ok"]
            assert seqs == [8], got
        finally:
            link.close()
        rc, out, err = _flash_one(capsys, board.port, "--check", "--bus")
        assert rc == 0, out + err  # the files, bus.json included, are what --bus writes
        rc, out, err = _flash_one(capsys, board.port, "--json")
        assert rc == 0, err
        (b,) = json.loads(out)["boards"]
        assert b["ok"] and any("bus.json removed" in n for n in b["notes"]), b
        assert not (board.flash_dir / "bus.json").exists()
    finally:
        lab.stop()


def test_flash_bus_refuses_a_board_with_more_bonds_than_a_bus_build_keeps(net, capsys):
    bd = next(b for b in net.boards if len(b.bonds) == 3)
    argv = ["flash", str(LI_MAO), "--node", str(bd.id), "--family", "esp32", "--bus",
            "--port", "/dev/null"]  # fmt: skip
    rc, out, err = _cli(capsys, *argv)
    assert rc != 0 and out == ""
    assert f"--bus: board {bd.id} owns 3 bonds; a esp32 board on a bus keeps 2" in err
