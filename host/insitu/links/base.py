"""The link interface every backend implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class LinkError(OSError):
    """A link could not be opened or broke; the message names the port."""


@runtime_checkable
class Link(Protocol):
    """A line-oriented, full-duplex channel to one or more boards.

    ``send`` writes one line (the terminator is added); ``receive`` returns the next line
    without its terminator, or None if none arrives within ``timeout`` seconds. A link that
    serves several boards (a bus, the in-process emulator) delivers a broadcast once.
    """

    name: str

    def send(self, line: str) -> None: ...

    def receive(self, timeout: float) -> str | None: ...

    def close(self) -> None: ...
