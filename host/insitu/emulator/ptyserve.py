"""Serve in-process emulated boards on pseudo-terminals, in real time.

Each board gets its own pty, so a terminal, pyserial or the host session can attach to it
like a USB serial port. One thread ticks every node at its control period on the real clock
and answers the lines arriving on any pty.
"""

from __future__ import annotations

import os
import selectors
import threading
import time
import tty

from insitu.emulator.inprocess import InProcessLab


class PtyServer:
    """Expose the boards of an ``InProcessLab`` (built with a ``RealClock``) on ptys."""

    def __init__(self, lab: InProcessLab) -> None:
        self.lab = lab
        self.ports: dict[int, str] = {}
        self._fds: dict[int, tuple[int, int]] = {}
        self._buf: dict[int, bytearray] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for bid in lab.nodes:
            m, s = os.openpty()
            tty.setraw(s)  # no echo, no line editing: bytes pass as on a USB CDC port
            os.set_blocking(m, False)
            self._fds[bid] = (m, s)
            self._buf[bid] = bytearray()
            self.ports[bid] = os.ttyname(s)

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

    def _run(self) -> None:
        lab = self.lab
        sel = selectors.DefaultSelector()
        for bid, (m, _) in self._fds.items():
            sel.register(m, selectors.EVENT_READ, bid)
        period = lab.period_ms / 1000.0
        nxt = time.monotonic()
        while not self._stop.is_set():
            timeout = max(0.0, nxt - time.monotonic())
            for key, _ in sel.select(timeout):
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
                    out = lab.nodes[bid].handle_line(line)
                    if out:
                        self._write(bid, out)
            if time.monotonic() >= nxt:
                now = lab.clock.ticks_ms()
                for bid, node in lab.nodes.items():
                    out = node.step(now)
                    if out:
                        self._write(bid, out)
                nxt += period
                if nxt < time.monotonic():  # overrun: resynchronise, as the firmware does
                    nxt = time.monotonic() + period
        sel.close()
