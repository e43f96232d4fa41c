"""Serial links through pyserial: real USB ports, pseudo-terminals, socket://, rfc2217://."""

from __future__ import annotations

import time

import serial

from .base import LinkError

DEFAULT_BAUD = 115200


class SerialLink:
    """A pyserial port speaking the line protocol.

    Bytes that are not ASCII (line noise, a board's boot garbage) are replaced, not fatal: the
    codec rejects the line and the session retries.
    """

    def __init__(
        self,
        url: str,
        baudrate: int = DEFAULT_BAUD,
        bus: bool = False,
        listen_s: float | None = None,
    ) -> None:
        """``bus``: the port is an adapter onto a shared bus (RS-485): the rig then sends its
        phases quiet (docs/protocol.md, "Bus"); ``listen_s``: how long silence after a quiet
        request means consent (None: what the deployed boards need, deploy.nodeconfig)."""
        self.name = url
        self.bus = bus
        self.listen_s = listen_s
        try:
            self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=0, exclusive=None)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"cannot open port {url}: {exc}") from None
        self._buf = bytearray()

    def send(self, line: str) -> None:
        try:
            self._port.write(line.encode("ascii") + b"\n")
            self._port.flush()
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"port {self.name}: write failed: {exc}") from None

    def receive(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                raw = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                return raw.decode("ascii", errors="replace").rstrip("\r")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                self._port.timeout = min(remaining, 0.05)
                chunk = self._port.read(max(1, self._port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                raise LinkError(f"port {self.name}: read failed: {exc}") from None
            self._buf += chunk

    def write_raw(self, data: bytes) -> None:
        """Bytes outside the protocol (Ctrl-C to interrupt a board's REPL, for instance)."""
        self._port.write(data)
        self._port.flush()

    def drain(self) -> None:
        """Forget whatever is buffered (banner text after a reset)."""
        self._buf.clear()
        self._port.reset_input_buffer()

    def close(self) -> None:
        self._port.close()


def open_link(url: str, baudrate: int = DEFAULT_BAUD, bus: bool = False) -> SerialLink:
    """Open a serial link by URL or device path (``bus``: an adapter onto a shared bus)."""
    return SerialLink(url, baudrate, bus)
