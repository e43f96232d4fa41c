"""Links between the host and node boards: one interface, backends chosen by URL.

``open_link(url)`` picks the backend the way pyserial's ``serial_for_url`` does: a device path
(``/dev/ttyACM0``, ``/dev/pts/5``, ``COM3``), ``socket://host:port`` and ``rfc2217://host:port``
go through pyserial; ``emu://`` links are made by the in-process emulator and handed over as
objects. Every backend moves ASCII lines; framing and integrity belong to the protocol codec.
"""

from .base import Link, LinkError
from .serial_link import SerialLink, open_link

__all__ = ["Link", "LinkError", "SerialLink", "open_link"]
