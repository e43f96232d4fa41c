"""Serve in-process emulated boards on pseudo-terminals, in real or in virtual time.

Each board gets its own pty, so a terminal, pyserial or the host session can attach to it
like a USB serial port. One thread answers the lines arriving on any pty and ticks the nodes:

- on a ``RealClock`` every node is ticked at its control period, as on a bench;
- on a ``VirtualClock`` time passes only while some board has a measurement in hand, and
  then as fast as the nodes can be ticked (``InProcessLab.step``: a settle is one jump). The
  host's side is unchanged (pyserial, the codec, the session's deadlines); only the waiting is
  gone, so a run that would take a rig hours takes minutes. Time stands still while every
  board is idle, so nothing on the boards can time out while the host computes.
"""

from __future__ import annotations

import os
import selectors
import threading
import time
import tty

from insitu.emulator.clock import VirtualClock
from insitu.emulator.inprocess import InProcessLab

QUIET_S = 0.001  # virtual time: host silence (wall s) that ends a burst of phase lines


# a pseudo-terminal per board (Linux allows 4,096 by default, shared with every terminal)
MAX_PTYS = 2048


def raw_pty() -> tuple[int, int, str]:
    """(master fd, slave fd, slave path) of a new pty whose slave is raw — no echo, no line
    editing: bytes pass as on a USB CDC port — and whose master never blocks."""
    m, s = os.openpty()
    tty.setraw(s)
    os.set_blocking(m, False)
    return m, s, os.ttyname(s)


class PtyServer:
    """Expose the boards of an ``InProcessLab`` on ptys (its clock decides real or virtual
    time, see the module doc)."""

    def __init__(self, lab: InProcessLab) -> None:
        self.lab = lab
        self.ports: dict[int, str] = {}
        self._fds: dict[int, tuple[int, int]] = {}
        self._buf: dict[int, bytearray] = {}
        self._stop = threading.Event()
        self._last_line = 0.0  # monotonic time the last bytes came in (virtual time's burst)
        self._thread: threading.Thread | None = None
        for bid in lab.nodes:
            m, s, self.ports[bid] = raw_pty()
            self._fds[bid] = (m, s)
            self._buf[bid] = bytearray()

    def start(self) -> PtyServer:
        self._thread = threading.Thread(target=self._run, name="insitu-ptyserve", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        for m, s in self._fds.values():
            for fd in (m, s):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> PtyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write(self, bid: int, lines: list[str]) -> None:
        m = self._fds[bid][0]
        data = "".join(line + "\r\n" for line in lines).encode()
        try:
            os.write(m, data)
        except BlockingIOError:
            pass  # nobody reading and the pty buffer is full: a board would drop it too

    def _serve_lines(self, sel: selectors.BaseSelector, timeout: float | None) -> bool:
        """Answer every complete line that arrives within ``timeout``; True if any came."""
        events = sel.select(timeout)
        if events:
            self._last_line = time.monotonic()
        for key, _ in events:
            bid = key.data
            try:
                chunk = os.read(key.fd, 4096)
            except (BlockingIOError, OSError):
                continue
            buf = self._buf[bid]
            buf += chunk
            while (nl := buf.find(b"\n")) >= 0:
                line = bytes(buf[:nl]).rstrip(b"\r").decode("ascii", "replace")
                del buf[: nl + 1]
                out = self.lab.nodes[bid].handle_line(line)
                if out:
                    self._write(bid, out)
        return bool(events)

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        for bid, (m, _) in self._fds.items():
            sel.register(m, selectors.EVENT_READ, bid)
        try:
            if isinstance(self.lab.clock, VirtualClock):
                self._run_virtual(sel)
            else:
                self._run_real(sel)
        finally:
            sel.close()

    def _run_virtual(self, sel: selectors.BaseSelector) -> None:
        lab = self.lab
        while not self._stop.is_set():
            if not lab._busy():  # time stands still until the host asks for something
                self._serve_lines(sel, 0.05)
                continue
            # The host writes a phase to its boards one port after another: let it finish
            # (QUIET_S without a new line) before time moves, so the boards start a phase
            # together. A board that hears it late only settles longer (the world's loads
            # are already in place), so a short window is safe: it costs rig time, not truth.
            self._serve_lines(sel, 0.0)
            while (wait := self._last_line + QUIET_S - time.monotonic()) > 0:
                self._serve_lines(sel, wait)
            for bid, out in lab.step().items():
                self._write(bid, out)

    def _run_real(self, sel: selectors.BaseSelector) -> None:
        lab = self.lab
        period = lab.period_ms / 1000.0
        nxt = time.monotonic()
        while not self._stop.is_set():
            self._serve_lines(sel, max(0.0, nxt - time.monotonic()))
            if time.monotonic() >= nxt:
                now = lab.clock.ticks_ms()
                for bid, node in lab.nodes.items():
                    out = node.step(now)
                    if out:
                        self._write(bid, out)
                nxt += period
                if nxt < time.monotonic():  # overrun: resynchronise, as the firmware does
                    nxt = time.monotonic() + period
