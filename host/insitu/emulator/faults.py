"""Faults on demand: broken parts of the emulated world and a lossy byte stream.

Part faults address a board's bond slot, as the board itself would (``board_id, slot``), and
stay until ``clear_*`` is called. What each fault does (also in docs/emulator.md):

- stuck sensor: every read returns one constant (by default the count it read last) and
  ``ready`` keeps saying 1, like an HX711 whose bridge came loose and latched;
- dead sensor: ``ready`` reads 0 forever (DOUT never goes low) and a strain read raises
  ``OSError(EIO)`` like a bus error, so a driver that polls times out and one that reads blindly
  gets an exception;
- noisy sensor: extra Gaussian noise (counts rms) on top of the profile's;
- saturated sensor: reads the 24-bit rail (+2^23-1 or -2^23), ``ready`` as usual;
- stuck stiffness element: ignores every command, k stays where it is;
- broken bond: the bond carries no force (it leaves the stiffness matrix) and its gauge sees a
  slack bar (elongation 0). If that leaves a mechanism, ``break_bond`` returns the message
  naming the free nodes and every read raises ``MechanismError`` until ``repair_bond``.

Link faults: ``FaultyStream`` wraps any byte stream (pyserial-like: read, readline, write) and
drops whole lines, drops bytes and flips bits with given probabilities. Decisions depend only
on the byte's position in the stream and the seed (separate generators per direction, and for
lines and bytes), so the same traffic is damaged the same way however it is chunked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .hardware import HX711_MAX, HX711_MIN
from .world import World


def _bond(world: World, board_id: int, slot: int) -> int:
    bonds = world.boards[board_id].bonds
    if not 0 <= slot < len(bonds):
        raise IndexError(f"board {board_id} has bond slots 0..{len(bonds) - 1}, not {slot}")
    return bonds[slot]


def stuck_sensor(world: World, board_id: int, slot: int, value: float | None = None) -> float:
    """Freeze a strain channel at `value` (default: its current reading). Returns the value."""
    b = _bond(world, board_id, slot)
    if value is None:
        value = world.read_strain(b)
    world.strain[b].stuck = value
    return value


def dead_sensor(world: World, board_id: int, slot: int) -> None:
    world.strain[_bond(world, board_id, slot)].dead = True


def noisy_sensor(world: World, board_id: int, slot: int, extra_counts: float) -> None:
    if extra_counts < 0:
        raise ValueError(f"extra noise must be >= 0 counts rms, got {extra_counts}")
    world.strain[_bond(world, board_id, slot)].extra_noise_counts = float(extra_counts)


def saturated_sensor(world: World, board_id: int, slot: int, high: bool = True) -> int:
    rail = HX711_MAX if high else HX711_MIN
    world.strain[_bond(world, board_id, slot)].saturated = rail
    return rail


def clear_sensor(world: World, board_id: int, slot: int) -> None:
    """Undo every sensor fault on a slot (a broken bond stays broken)."""
    s = world.strain[_bond(world, board_id, slot)]
    s.stuck, s.dead, s.extra_noise_counts, s.saturated = None, False, 0.0, None


def stuck_element(world: World, board_id: int, slot: int, stuck: bool = True) -> None:
    world.elements[_bond(world, board_id, slot)].stuck = stuck


def break_bond(world: World, bond: int) -> str | None:
    """Break a bond (index into Network.bonds). Returns a mechanism message, or None."""
    if not 0 <= bond < world.net.n_bonds:
        raise IndexError(f"network has bonds 0..{world.net.n_bonds - 1}, not {bond}")
    return world._set_alive(bond, False)


def repair_bond(world: World, bond: int) -> str | None:
    return world._set_alive(bond, True)


# ----------------------------------------------------------------------------- link faults


class _Mangler:
    """Drops lines, drops bytes and flips bits in one direction of a stream."""

    def __init__(self, corrupt: float, drop: float, drop_line: float, seed: int, side: int):
        for name, p in (("corrupt", corrupt), ("drop", drop), ("drop_line", drop_line)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} probability must be in [0, 1], got {p}")
        self.corrupt, self.drop, self.drop_line = corrupt, drop, drop_line
        self._bytes = np.random.default_rng([seed, side, 1])
        self._lines = np.random.default_rng([seed, side, 2])
        self._at_line_start = True
        self._dropping = False
        self.stats = {"bytes": 0, "corrupted": 0, "dropped": 0, "lines_dropped": 0}

    @property
    def active(self) -> bool:
        return self.corrupt > 0 or self.drop > 0 or self.drop_line > 0

    def __call__(self, data: bytes) -> bytes:
        n = len(data)
        self.stats["bytes"] += n
        if n == 0 or not self.active:
            return data
        arr = np.frombuffer(bytes(data), dtype=np.uint8).copy()
        # three draws per byte, for every byte, from one generator: decisions then depend on
        # the byte's position in the stream only, not on how the stream was chunked
        u = self._bytes.random((n, 3))
        bits = (u[:, 2] * 8).astype(np.int64)
        keep = u[:, 0] >= self.drop
        flip = (u[:, 1] < self.corrupt) & keep
        if self.drop_line > 0:
            keep &= ~self._line_mask(arr)
            flip &= keep
        arr[flip] ^= (1 << bits[flip]).astype(np.uint8)
        self.stats["corrupted"] += int(flip.sum())
        self.stats["dropped"] += int(n - keep.sum())
        return arr[keep].tobytes()

    def _line_mask(self, arr: np.ndarray) -> np.ndarray:
        """True for bytes of lines chosen for dropping (a line includes its newline)."""
        nl = arr == 0x0A
        line = np.concatenate(([0], np.cumsum(nl)[:-1]))  # line number of each byte in chunk
        n_lines = int(line[-1]) + 1
        drop = np.zeros(n_lines, dtype=bool)
        for i in range(n_lines):
            if i == 0 and not self._at_line_start:
                drop[0] = self._dropping  # continuing a line begun in an earlier chunk
            else:
                drop[i] = self._lines.random() < self.drop_line
                self.stats["lines_dropped"] += int(drop[i])
        self._at_line_start = bool(nl[-1])
        self._dropping = bool(drop[-1])
        return drop[line]


def _manglers(
    corrupt: float, drop: float, drop_line: float, seed: int, direction: str
) -> tuple[_Mangler, _Mangler]:
    """(read, write) manglers: the damage applies to the directions asked for."""
    if direction not in ("both", "read", "write"):
        raise ValueError(f"direction must be both, read or write, got {direction!r}")
    off = (0.0, 0.0, 0.0)
    on = (corrupt, drop, drop_line)
    return (
        _Mangler(*(on if direction in ("both", "read") else off), seed, 1),
        _Mangler(*(on if direction in ("both", "write") else off), seed, 2),
    )


class _Damaged:
    """What FaultyStream and FaultyLink share: the inner object, one mangler per direction
    and their counts."""

    def __init__(
        self,
        inner: Any,
        corrupt: float = 0.0,
        drop: float = 0.0,
        drop_line: float = 0.0,
        seed: int = 0,
        direction: str = "both",
    ) -> None:
        self.inner = inner
        self._rx, self._tx = _manglers(corrupt, drop, drop_line, seed, direction)

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return {"read": dict(self._rx.stats), "write": dict(self._tx.stats)}


def _take_line(buf: bytearray) -> str | None:
    """The first complete line in buf (removed from it, decoded as a port would), or None."""
    nl = buf.find(b"\n")
    if nl < 0:
        return None
    out = bytes(buf[:nl]).decode("ascii", errors="replace").rstrip("\r")
    del buf[: nl + 1]
    return out


class FaultyStream(_Damaged):
    """A byte stream that loses and damages data on the way, deterministically by seed.

    ``corrupt``: probability that a byte gets one random bit flipped; ``drop``: that a byte is
    lost; ``drop_line``: that a whole line (up to and including b"\\n") is lost. ``direction``
    picks which way is damaged: "both", "read" (data coming from inner) or "write". Every other
    attribute passes through to the inner stream. ``stats`` counts what was done.
    """

    def write(self, data: bytes) -> int:
        out = self._tx(bytes(data))
        if out:
            self.inner.write(out)
        return len(data)  # the sender never learns what the line lost

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        return self._rx(self.inner.read(*args, **kwargs))

    def readline(self, *args: Any, **kwargs: Any) -> bytes:
        return self._rx(self.inner.readline(*args, **kwargs))

    def read_until(self, *args: Any, **kwargs: Any) -> bytes:
        return self._rx(self.inner.read_until(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FaultyLink(_Damaged):
    """A line link (MemoryLink, SerialLink, anything with send/receive/close) whose traffic is
    damaged as bytes on a wire would be, by the same seedable model as ``FaultyStream``.

    Each line is turned into its bytes plus b"\\n", passed through the same per-direction
    mangler (bit flips, lost bytes, lost lines), and split into lines again on b"\\n". So a
    flipped newline merges two lines, a flip that makes a b"\\n" splits one, and a line whose
    terminator is lost waits for the next: what a reader of a real port would see. Bytes that
    are not ASCII after a flip are decoded with U+FFFD, as ``SerialLink`` does, and the codec
    rejects the line. ``stats`` counts what was done, per direction; every other attribute
    (``virtual``, ``lab``...) passes through to the inner link.
    """

    def __init__(self, inner: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(inner, *args, **kwargs)
        self.name = f"faulty:{getattr(inner, 'name', 'link')}"
        self._txbuf = bytearray()
        self._rxbuf = bytearray()

    def send(self, line: str) -> None:
        self._txbuf += self._tx(line.encode("ascii", errors="replace") + b"\n")
        while (out := _take_line(self._txbuf)) is not None:
            self.inner.send(out)

    def receive(self, timeout: float) -> str | None:
        while (out := _take_line(self._rxbuf)) is None:
            line = self.inner.receive(timeout)
            if line is None:
                return None
            self._rxbuf += self._rx(line.encode("ascii", errors="replace") + b"\n")
        return out

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


__all__ = [
    "FaultyLink",
    "FaultyStream",
    "break_bond",
    "clear_sensor",
    "dead_sensor",
    "noisy_sensor",
    "repair_bond",
    "saturated_sensor",
    "stuck_element",
    "stuck_sensor",
]
