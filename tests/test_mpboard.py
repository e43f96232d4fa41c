"""Emulated boards as real MicroPython processes (host/insitu/emulator/mpboard.py).

Drives the boards with the real `mpremote` command, mpremote's own serial transport, pyserial
and `mpremote repl` on a terminal. These tests need the `micropython` and `mpremote` commands
(`make test` installs them into .venv); when they are missing the tests FAIL, never skip.
"""

from __future__ import annotations

import os
import pty
import select
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import serial
from mpremote.transport_serial import SerialTransport

from insitu.emulator.mpboard import (
    HARD_RESET,
    PWRON_RESET,
    SOFT_RESET,
    WDT_RESET,
    MicroPythonBoard,
    decode_value,
    encode_value,
    find_executable,
    find_micropython,
)

# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mpremote() -> str:
    return find_executable("mpremote")  # FileNotFoundError = failure, on purpose


@pytest.fixture(scope="module")
def micropython() -> str:
    return find_micropython()


def _children() -> list[tuple[int, str, str]]:
    """(pid, state, cmdline) of this process's child processes."""
    me = os.getpid()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        if int(rest[1]) == me:
            out.append((int(d), rest[0], cmd))
    return out


@pytest.fixture
def boards(micropython: str, tmp_path: Path):
    """Factory: boards(n, **kw) -> list of started boards with flash dirs under tmp_path.
    Stops them all afterwards and checks that no micropython process or thread is left."""
    made: list[MicroPythonBoard] = []

    def make(n: int = 1, files: dict[str, str] | None = None, **kw) -> list[MicroPythonBoard]:
        out = []
        for _ in range(n):
            k = len(made)
            flash = tmp_path / f"flash{k}"
            flash.mkdir()
            for name, text in (files or {}).items():
                (flash / name).write_text(text)
            b = MicroPythonBoard(flash, unique_id=0xB0A4D000 + k, name=f"t{k}", **kw)
            made.append(b)
            out.append(b.start())
        return out

    yield make
    stalls = [(b.name, e) for b in made for e in b.events if e.kind == "gate-timeout"]
    assert not stalls, f"a board held host input until its safety timeout: {stalls}"
    pids = [b.pid for b in made]
    threads = [b._thread for b in made]
    for b in made:
        b.stop()
    for pid in pids:
        if pid is not None:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)  # killed and reaped: not even a zombie
    assert all(t is None or not t.is_alive() for t in threads)
    left = [c for c in _children() if "micropython" in c[2]]
    assert not left, f"micropython processes left behind: {left}"


def _run(mpremote: str, port: str, *args: str, timeout: float = 20) -> str:
    r = subprocess.run(
        [mpremote, "connect", port, *args], capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, f"mpremote {args} failed: {r.stdout}\n{r.stderr}"
    return r.stdout


def _read_until(s: serial.Serial, marker: bytes, timeout: float = 5.0) -> bytes:
    s.timeout = timeout
    data = s.read_until(marker)
    assert data.endswith(marker), f"expected {marker!r}, got {data!r}"
    return data


def _exec(port: str, code: str) -> str:
    """Run code in the raw REPL with mpremote's own transport (no soft reset)."""
    t = SerialTransport(port, baudrate=115200, timeout=5)  # fail, never hang, on silence
    try:
        t.enter_raw_repl(soft_reset=False)
        out = t.exec(code)
        t.exit_raw_repl()
    finally:
        t.close()
    return out.decode().strip()


BOOT_PY = "print('BOOT-RAN')\n"
MAIN_PY = "import machine\nprint('MAIN-RAN', machine.reset_cause())\n"
LINE_LOOP = """import sys
print('LOOP-READY')
while True:
    line = sys.stdin.readline()
    print('echo:' + line.strip())
"""

# ---------------------------------------------------------------------------------- tests


def test_value_encoding_is_exact() -> None:
    for v in (0, -8388608, 8388607, 2**70, 0.1, -1e-300, 1 / 3, float("inf"), None):
        assert decode_value(encode_value(v)) == v
    assert encode_value(True) == "i1"
    assert isinstance(decode_value(encode_value(2.0)), float)


def test_mpremote_cp_exec_reset_soft_reset_then_pyserial(boards, mpremote, tmp_path) -> None:
    (b,) = boards(1, {"boot.py": BOOT_PY, "main.py": MAIN_PY})
    b.wait_output(f"MAIN-RAN {PWRON_RESET}\r\n".encode())

    # (commands chained in one mpremote run where the order allows: every run of mpremote
    # costs a CPython start-up, and the machine is shared)
    src = tmp_path / "x.py"
    src.write_text("def hello():\n    return 'hello from x'\n")
    out = _run(mpremote, b.port, "fs", "cp", str(src), ":.", "+", "exec",
               "import x; print(x.hello())", "+", "fs", "ls")
    assert (b.flash_dir / "x.py").read_text() == src.read_text()
    assert "hello from x\n" in out and "x.py" in out

    # hard reset: boot.py and main.py run again, and main.py sees why
    mark = b.output_mark()
    _run(mpremote, b.port, "reset")
    b.wait_event(lambda e: e.kind == "boot" and e.detail == "soft", timeout=10)
    after = b.wait_output(f"MAIN-RAN {SOFT_RESET}\r\n".encode(), start=mark)
    assert b"BOOT-RAN\r\n" in b.transcript(mark)[: after - mark]

    # soft reset from the raw REPL, as mpremote does it: boot.py runs, main.py does not
    mark = b.output_mark()
    script = tmp_path / "script.py"
    script.write_text("import machine\nprint('RUN', machine.reset_cause())\n")
    out = _run(mpremote, b.port, "resume", "soft-reset", "+", "run", str(script), "+",
               "eval", "6*7")
    assert out.split() == ["RUN", str(SOFT_RESET), "42"]
    tail = b.transcript(mark)
    assert tail.count(b"MPY: soft reboot") == 1
    assert b"OK\r\nMPY: soft reboot\r\nBOOT-RAN\r\nraw REPL; CTRL-B to exit\r\n>" in tail
    assert b"MAIN-RAN" not in tail

    # still a board for pyserial: Ctrl-C gives the friendly prompt, Ctrl-D soft-reboots it
    with serial.Serial(b.port, 115200, timeout=5) as s:
        s.reset_input_buffer()
        s.write(b"\x03")
        _read_until(s, b">>> ")
        s.write(b"print('a\\nb')\r")
        _read_until(s, b"a\r\nb\r\n>>> ")  # print's \n arrives as \r\n, as on a board
        s.write(b"\x04")
        got = _read_until(s, b">>> ")
        assert b"MPY: soft reboot\r\nBOOT-RAN\r\nMAIN-RAN 5\r\n" in got
        assert b'Type "help()" for more information.\r\n>>> ' in got


def test_main_py_line_loop_ctrl_c_and_repl(boards, mpremote) -> None:
    (b,) = boards(1, {"main.py": LINE_LOOP})
    with serial.Serial(b.port, 115200, timeout=5) as s:
        b.wait_output(b"LOOP-READY\r\n")
        s.reset_input_buffer()
        for word in ("ping", "pong"):
            s.write(word.encode() + b"\n")
            _read_until(s, f"echo:{word}\r\n".encode())
        s.write(b"\x03")  # Ctrl-C: KeyboardInterrupt in main.py, then the REPL
        got = _read_until(s, b">>> ")
        assert b"KeyboardInterrupt" in got and b'File "main.py"' in got
        s.write(b"print(sum(range(10)))\r")
        _read_until(s, b"45\r\n>>> ")
        s.write(b"\x04")  # soft reset at the friendly prompt runs main.py again
        _read_until(s, b"MPY: soft reboot\r\nLOOP-READY\r\n")
        s.write(b"again\n")
        _read_until(s, b"echo:again\r\n")

    # mpremote interrupts the running main.py by itself (Ctrl-C, raw REPL, soft reset)
    assert _run(mpremote, b.port, "exec", "print('via mpremote')").strip() == "via mpremote"

    # and `mpremote repl` works on a terminal
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - child
        os.execv(mpremote, [mpremote, "connect", b.port, "repl"])
    try:
        out = b""
        sent = False
        deadline = time.monotonic() + 10
        while b"42\r\n>>> " not in out and time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                out += os.read(fd, 4096)
            if not sent and b"Ctrl-]" in out:
                os.write(fd, b"\r\nprint(6*7)\r")
                sent = True
        assert b"42\r\n>>> " in out, out
        os.write(fd, b"\x1d")  # Ctrl-] leaves mpremote's terminal
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0


class RecordingBus:
    def __init__(self) -> None:
        self.writes: list[tuple[str, int, object]] = []
        self.lock = threading.Lock()

    def read(self, device: str, channel: int):
        if device == "strain":
            return -8388608 + channel
        if device == "disp":
            return 1 / 3
        if device == "none":
            return None
        raise KeyError(device)

    def write(self, device: str, channel: int, value) -> None:
        with self.lock:
            self.writes.append((device, channel, value))


EMUBUS_MAIN = """import emubus, time
v = emubus.read("strain", 2)
d = emubus.read("disp", 0)
emubus.write("stiffness", 3, 1500)
emubus.write("force", 1, -0.25)
emubus.write("echo", 0, d)
emubus.write("clamp", 4, emubus.read("none", 0))
try:
    emubus.read("nonexistent", 0)
except OSError as e:
    print("BUSERR", e)
rts = []
for i in range(300):
    t0 = time.ticks_us()
    emubus.read("strain", 0)
    rts.append(time.ticks_diff(time.ticks_us(), t0))
rts.sort()
print("STRAIN", v, "MEDIAN_US", rts[len(rts) // 2], "DONE")
"""


def test_emubus_round_trip(boards) -> None:
    bus = RecordingBus()
    (b,) = boards(1, {"main.py": EMUBUS_MAIN}, bus=bus)
    end = b.wait_output(b"DONE\r\n")
    out = b.transcript()[:end].decode()
    assert f"STRAIN {-8388608 + 2} " in out
    assert "BUSERR KeyError: 'nonexistent'" in out
    assert bus.writes == [
        ("stiffness", 3, 1500),
        ("force", 1, -0.25),
        ("echo", 0, 1 / 3),  # bit-exact both ways
        ("clamp", 4, None),
    ]
    assert isinstance(bus.writes[0][2], int)
    median_us = float(out.split("MEDIAN_US")[1].split()[0])
    print(f"\nemubus.read round trip on the board, median of 300: {median_us:.0f} us")


def test_unique_id_flash_and_ports_of_four_boards(boards, mpremote, tmp_path) -> None:
    four = boards(4, {"main.py": MAIN_PY})
    assert len({b.port for b in four}) == 4
    assert len({b.flash_dir for b in four}) == 4
    code = "import machine, binascii; print(binascii.hexlify(machine.unique_id()).decode())"
    ids = [_exec(b.port, code) for b in four]
    assert len(set(ids)) == 4
    assert ids[0] == (0xB0A4D000).to_bytes(8, "big").hex()

    # separate flash: a file copied to board 1 is on board 1 only
    src = tmp_path / "only1.py"
    src.write_text("X = 1\n")
    _run(mpremote, four[1].port, "fs", "cp", str(src), ":.")
    assert [(b.flash_dir / "only1.py").exists() for b in four] == [False, True, False, False]

    # the id survives every kind of reset
    four[0].hard_reset()
    four[2].power_cycle()
    four[3].soft_reset()
    _run(mpremote, four[1].port, "reset")
    four[1].wait_event(lambda e: e.kind == "boot" and e.detail == "soft")
    four[0].wait_output(f"MAIN-RAN {HARD_RESET}\r\n".encode())
    assert [_exec(b.port, code) for b in four] == ids
    assert _exec(four[2].port, "import machine; print(machine.reset_cause())") == "1"


WDT_MAIN = """import machine, time
print("CAUSE", machine.reset_cause())
if machine.reset_cause() != machine.WDT_RESET:
    w = machine.WDT(timeout=300)
    for i in range(4):
        time.sleep_ms(100)
        w.feed()
    print("FED-OK")
    time.sleep_ms(3000)
    print("NOT-RESET")
"""


def test_watchdog_resets_when_not_fed_and_survives_soft_reset(boards) -> None:
    (b,) = boards(1, {"main.py": WDT_MAIN})
    b.wait_output(b"FED-OK\r\n")
    b.wait_event(lambda e: e.kind == "boot" and e.detail == "wdt", timeout=5)
    b.wait_output(f"CAUSE {WDT_RESET}\r\n".encode())
    assert b"NOT-RESET" not in b.transcript()

    # started from the REPL, it keeps running through a soft reset (it cannot be stopped)
    n = len(b.events)
    assert _exec(b.port, "import machine; machine.WDT(timeout=400); print('armed')") == "armed"
    with pytest.raises(ValueError):
        # the board refuses timeouts an RP2040 cannot do
        _exec_raises(b.port, "import machine; machine.WDT(timeout=100000)")
    b.soft_reset()
    b.wait_event(lambda e: e.kind == "boot" and e.detail == "wdt", start=n, timeout=5)


HANG_MAIN = """import emubus, time
i = 0
while True:
    emubus.read("strain", 0)
    emubus.read("strain", 1)
    i += 1
    if i % 20 == 0:
        print("TICK", i)
    time.sleep_ms(2)
"""


def test_hung_device_blocks_the_board_until_ctrl_c_or_reset(boards) -> None:
    (b,) = boards(1, {"main.py": HANG_MAIN}, bus=RecordingBus())
    b.wait_output(b"TICK 20\r\n")
    with pytest.raises(ValueError):
        b.hang("two words")
    n = len(b.events)
    b.hang("strain", 1)  # channel 0 still answers; the first read of channel 1 never returns
    assert b.wait_event("hang", start=n, timeout=5).detail == "r strain 1"
    mark = b.output_mark()
    time.sleep(0.3)
    assert b"TICK" not in b.transcript(mark)
    assert [e.kind for e in b.events[n:]] == ["hang"]
    with serial.Serial(b.port, 115200, timeout=5) as s:
        s.write(b"\x03")  # the board is blocked in a socket read: Ctrl-C interrupts it
        assert b"KeyboardInterrupt" in _read_until(s, b">>> ")
        # the device is still locked: the same read at the REPL blocks again
        s.write(b"import emubus; emubus.read('strain', 1)\r")
        b.wait_event(lambda e: e.kind == "hang", start=n + 1, timeout=5)
        mark = b.output_mark()
        b.hard_reset()  # a reset re-initialises the device
        b.wait_output(b"TICK 20\r\n", start=mark)


def _exec_raises(port: str, code: str) -> None:
    try:
        _exec(port, code)
    except Exception as e:  # TransportExecError carries the board's traceback
        if "ValueError" in str(e):
            raise ValueError(str(e)) from e
        raise


def test_power_cut_keeps_flash_and_machine_reset_from_main(boards) -> None:
    files = {
        "main.py": "import machine, os\n"
        "print('CAUSE', machine.reset_cause())\n"
        "if 'again' not in os.listdir():\n"
        "    open('again', 'w').close()\n"
        "    machine.reset()\n"
    }
    (b,) = boards(1, files)
    # main.py resets the board once by itself; the second boot sees SOFT_RESET (machine.reset)
    b.wait_output(f"CAUSE {SOFT_RESET}\r\n".encode())
    assert (b.flash_dir / "again").exists()

    assert _exec(b.port, "f = open('kept.txt', 'w'); f.write('42'); f.close()") == ""
    pid = b.pid
    b.power_cut()
    assert b.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with serial.Serial(b.port, 115200, timeout=0.2) as s:  # a dead board says nothing
        s.reset_input_buffer()
        s.write(b"\r\x03")
        assert s.read(100) == b""
    assert (b.flash_dir / "kept.txt").read_text() == "42"
    mark = b.output_mark()
    b.power_on()
    b.wait_output(f"CAUSE {PWRON_RESET}\r\n".encode(), start=mark)
    assert _exec(b.port, "print(open('kept.txt').read())") == "42"


def test_connect_right_after_reset(boards) -> None:
    """mpremote's Ctrl-C arriving while the board boots must neither be lost nor kill the
    interpreter (the unix port has no SIGINT handler between its script and its REPL)."""
    (b,) = boards(1, {"main.py": MAIN_PY})
    # the race is rare: INSITU_MPBOARD_STRESS=200 makes this a stress test
    for i in range(int(os.environ.get("INSITU_MPBOARD_STRESS", "4"))):
        for reset in (b.hard_reset, b.soft_reset, b.power_cycle):
            reset()
            assert _exec(b.port, f"print({i} * 10)") == str(i * 10)
    assert not [e for e in b.events if e.kind == "exit" and e.detail != "0"], b.events


def test_ctrl_c_interrupts_repl_code_and_recovers_a_hung_interpreter(boards) -> None:
    hang = (
        "import _thread\nl = _thread.allocate_lock()\nl.acquire()\nprint('LOCKED')\n"
        "while True:\n    try:\n        l.acquire()\n    except KeyboardInterrupt:\n"
        "        print('KI')\n"
    )
    (b,) = boards(1, {"main.py": hang})
    b.wait_output(b"LOCKED\r\n")
    with serial.Serial(b.port, 115200, timeout=5) as s:
        s.reset_input_buffer()
        # single-threaded and asleep on a lock after a Ctrl-C: what a unix-port interpreter
        # looks like when the asynchronous KeyboardInterrupt left a VM mutex locked
        s.write(b"\x03")
        _read_until(s, b">>> ")
        assert b.wait_event("deadlock", timeout=5)
        # an allocating busy loop typed at the REPL, interrupted again and again: it never
        # sleeps in a system call, so the SIGINT lands anywhere; rarely (a few in a thousand
        # at high load) that is inside a VM lock, and the board comes back without its state
        for _ in range(5):
            n = len(b.events)
            s.write(b"while True: x = [j for j in range(10)]\r\r")
            time.sleep(0.02)
            s.write(b"\x03")
            out = _read_until(s, b">>> ")
            assert b"KeyboardInterrupt" in out or any(
                e.kind == "deadlock" for e in b.events[n:]
            ), out
        s.write(b"print(6*7)\r")
        _read_until(s, b"42\r\n>>> ")
    assert not [e for e in b.events if e.kind == "exit"], b.events


def test_socket_url_and_stop_is_idempotent(boards) -> None:
    (b,) = boards(1, tcp_port=0)
    assert b.url is not None and b.url.startswith("socket://127.0.0.1:")
    assert _exec(b.url, "print(1 + 1)") == "2"
    assert _exec(b.port, "print(2 + 2)") == "4"
    b.stop()
    b.stop()
    assert not b.running


def test_missing_interpreter_fails_loudly(tmp_path) -> None:
    b = MicroPythonBoard(tmp_path / "f", 1, micropython=str(tmp_path / "no-such-micropython"))
    with pytest.raises(OSError):
        b.start()
    b.stop()


def test_starting_boards_from_a_threaded_host_prints_nothing(boards, capfd) -> None:
    """Boards start while other boards' supervisor threads run: no Python may run in the
    forked child (CPython's at-fork handlers printed an "_after_fork" traceback per board),
    and each interpreter still gets its pty as controlling terminal, in a session of its
    own, killed with its supervisor (util-linux setsid --ctty / setpriv --pdeathsig)."""
    four = boards(4)

    def session_and_tty(pid: int) -> tuple[int, int]:
        tty_nr = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[4])
        return os.getsid(pid), tty_nr

    for b in four:
        assert b.pid is not None
        deadline = time.monotonic() + 10  # setsid runs just after the spawn returns
        while time.monotonic() < deadline:
            sid, tty_nr = session_and_tty(b.pid)
            if sid == b.pid and tty_nr != 0:
                break
            time.sleep(0.01)
        sid, tty_nr = session_and_tty(b.pid)
        assert sid == b.pid  # a session of its own
        assert tty_nr != 0  # a controlling terminal: the board's pty
    err = capfd.readouterr().err
    assert "Traceback" not in err and "_after_fork" not in err, err


def test_round_trip_host_to_board_over_pty(boards) -> None:
    """Host <-> main.py line round trip over the pty (pyserial), median of 200 (reported)."""
    (b,) = boards(1, {"main.py": LINE_LOOP})
    b.wait_output(b"LOOP-READY\r\n")
    with serial.Serial(b.port, 115200, timeout=5) as s:
        s.reset_input_buffer()
        rts = []
        for i in range(200):
            t0 = time.perf_counter()
            s.write(b"%d\n" % i)
            _read_until(s, b"echo:%d\r\n" % i)
            rts.append(time.perf_counter() - t0)
    print(f"\nhost<->board line round trip over the pty, median of 200: "
          f"{statistics.median(rts) * 1e3:.2f} ms", file=sys.stderr)
