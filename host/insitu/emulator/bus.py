"""An emulated RS-485 bus: every board on one half-duplex line, timed at its baud rate.

The host and the boards share one line. A frame occupies it for its bytes at ``baud`` (10
bits a byte: start, 8 data, stop); after the host's frame a board needs ``turnaround_us``
before it can answer (its receive interrupt, handle_line, its driver enable); a board
transmits only after the line has been idle for ``(slot + 1) * gap_us`` (the firmware's carrier
sense, hal/bus.py), so boards that answer the same request go one after another in slot
order. Each board runs the firmware's own bus drop (``insitu_node.hal.bus.Quiet``), which keeps
its ``ok`` replies to quiet requests off the line. Faults: a ``dead`` board hears nothing and
says nothing; a ``babbler`` transmits noise bursts without carrier sense, and any frame they
overlap arrives garbled on both sides (collisions), as the codec's CRC then finds.

``InProcessBus`` puts an ``InProcessLab``'s boards on one bus in virtual time: the wire's time
is the lab clock's, so rig time includes it. ``BusStats`` counts what the line carried.
"""

from __future__ import annotations

import heapq
import os
import random
import selectors
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from insitu.deploy.nodeconfig import (
    BUS_BAUD,
    BUS_GAP_US,
    BUS_HANDLE_US,
    BUS_TURNAROUND_US,
    bus_listen_s,
    bus_slots,
)
from insitu_node.hal.bus import Quiet

if TYPE_CHECKING:
    from insitu.emulator.inprocess import InProcessLab


@dataclass(frozen=True)
class BusTiming:
    """The line's timing (defaults: deploy.nodeconfig). 1 Mbaud: an RS-485 transceiver such
    as the MAX3485 runs to 10 Mbit/s, and a UART at 1 Mbaud is within every family's range."""

    baud: int = BUS_BAUD
    turnaround_us: int = BUS_TURNAROUND_US
    gap_us: int = BUS_GAP_US
    listen_us: int = BUS_HANDLE_US  # how long a board may take to handle a request

    def frame_us(self, line: str) -> int:
        """Line time of a frame and its newline."""
        return -(-(len(line) + 1) * 10 * 1_000_000 // self.baud)

    def listen_s(self, boards: int) -> float:
        """How long the host listens after a quiet request before it takes silence for
        consent: the slowest board's handling, its turnaround and the last slot's wait."""
        return bus_listen_s(boards, self.gap_us, self.listen_us, self.turnaround_us)


@dataclass
class BusStats:
    """What the line carried (host → boards and boards → host)."""

    host_frames: int = 0
    host_bytes: int = 0
    board_frames: int = 0
    board_bytes: int = 0
    busy_us: int = 0  # the line driven by someone
    collisions: int = 0  # frames garbled by an overlap
    kept_quiet: int = 0  # ok replies the boards' bus drops kept off the line
    measuring_us: int = 0  # time some board was measuring (settling, sampling): the physics

    def snapshot(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Babbler:
    """A board whose transmitter is stuck: a ``burst_us`` burst of noise every ``period_us``,
    ignoring carrier sense."""

    period_us: int = 5_000
    burst_us: int = 400
    phase_us: int = 0

    def next_end(self, t: int) -> int:
        """End of the first burst that ends after ``t``."""
        k = (t - self.phase_us - self.burst_us) // self.period_us + 1
        return self.phase_us + k * self.period_us + self.burst_us

    def overlaps(self, start: int, end: int) -> bool:
        k = (start - self.phase_us) // self.period_us
        for j in (k, k + 1):
            b0 = self.phase_us + j * self.period_us
            if b0 < end and start < b0 + self.burst_us:
                return True
        return False


def _garble(line: str, rng: random.Random) -> str:
    """A frame as a collision leaves it: a few characters overwritten."""
    chars = list(line)
    for _ in range(max(1, len(chars) // 16)):
        chars[rng.randrange(len(chars))] = chr(rng.randrange(33, 127))
    return "".join(chars)


@dataclass
class _Line:
    """The line's schedule: when it is next free, and what it has carried."""

    timing: BusTiming
    free_us: int = 0
    stats: BusStats = field(default_factory=BusStats)
    babbler: Babbler | None = None

    def host(self, now_us: int, line: str) -> tuple[int, bool]:
        """The host sends: (end time, garbled)."""
        self.stats.host_frames += 1
        self.stats.host_bytes += len(line) + 1
        return self._occupy(max(now_us, self.free_us), line)

    def board(self, ready_us: int, slot: int, line: str) -> tuple[int, bool]:
        """A board sends once its slot's silence has passed: (end time, garbled)."""
        self.stats.board_frames += 1
        self.stats.board_bytes += len(line) + 1
        return self._occupy(max(ready_us, self.free_us + (slot + 1) * self.timing.gap_us), line)

    def _occupy(self, start: int, line: str) -> tuple[int, bool]:
        end = start + self.timing.frame_us(line)
        self.free_us = end
        self.stats.busy_us += end - start
        return end, self._hit(start, end)

    def _hit(self, start: int, end: int) -> bool:
        if self.babbler is not None and self.babbler.overlaps(start, end):
            self.stats.collisions += 1
            return True
        return False


class InProcessBus:
    """A link to every board of an ``InProcessLab`` over one emulated bus (virtual time).

    ``send`` puts the host's frame on the line (the lab clock advances by its line time,
    boards ticking meanwhile) and hands it to every live board through its bus drop;
    ``receive`` returns the boards' frames in the order and at the time the line carries them.
    """

    virtual = True
    bus = True

    def __init__(
        self,
        lab: InProcessLab,
        timing: BusTiming | None = None,
        dead: tuple[int, ...] = (),
        babbler: Babbler | None = None,
        seed: int = 0,
    ) -> None:
        self.lab = lab
        self.timing = timing or BusTiming()
        self.slots = bus_slots(lab.network)
        self.dead = set(dead)
        self.boards = set(lab.nodes) - self.dead  # what the lab delivers here (deliver)
        self.drops = {bid: Quiet() for bid in lab.nodes}
        self.name = f"bus://{lab.network.name}@{self.timing.baud}"
        self.line = _Line(self.timing, lab.clock.now_us(), babbler=babbler)
        self.listen_s = self.timing.listen_s(len(lab.nodes))
        self._queue: list[tuple[int, int, str]] = []  # (arrives at the host, order, line)
        self._order = 0
        self._rng = random.Random(seed)
        lab._links.append(self)

    @property
    def stats(self) -> BusStats:
        self.line.stats.kept_quiet = sum(d.kept for d in self.drops.values())
        return self.line.stats

    # -------------------------------------------------------------- time

    def _advance_to(self, t_us: int) -> None:
        """Let the lab clock reach ``t_us``, ticking the boards every period while any is
        busy (a deferred reply that falls due meanwhile is scheduled on the line)."""
        lab, clock = self.lab, self.lab.clock
        period_us = lab.period_ms * 1000
        while clock.now_us() < t_us:
            d = t_us - clock.now_us()
            busy = lab._busy()
            if busy and d >= period_us:
                d = period_us
            clock.sleep_us(d)
            if busy:
                self.line.stats.measuring_us += d
                if d == period_us:
                    lab._tick_all()

    # -------------------------------------------------------------- the host's side

    def send(self, line: str) -> None:
        end, garbled = self.line.host(self.lab.clock.now_us(), line)
        self._advance_to(end)
        heard = _garble(line, self._rng) if garbled else line
        ready = end + self.timing.turnaround_us
        for bid in sorted(self.boards, key=self.slots.__getitem__):
            drop = self.drops[bid]
            drop.hear(heard)
            for reply in self.lab.nodes[bid].handle_line(heard):
                self._emit(bid, reply, ready)

    def deliver(self, bid: int, lines: list[str]) -> None:
        """What a board wrote in its control tick (a deferred reply, an event)."""
        if bid not in self.boards:
            return
        for line in lines:
            self._emit(bid, line, self.lab.clock.now_us())

    def _emit(self, bid: int, line: str, ready_us: int) -> None:
        if not self.drops[bid].speaks(line):
            return
        end, garbled = self.line.board(ready_us, self.slots[bid], line)
        if garbled:
            line = _garble(line, self._rng)
        heapq.heappush(self._queue, (end, self._order, line))
        self._order += 1

    def _noise(self, deadline: int) -> str | None:
        """A babbler's burst as the host's UART receives it, if one ends before anything
        else arrives and before ``deadline``."""
        bab = self.line.babbler
        if bab is None:
            return None
        t = bab.next_end(self.lab.clock.now_us())
        if t > deadline or (self._queue and self._queue[0][0] <= t):
            return None
        self._advance_to(t)
        n = max(1, bab.burst_us * self.timing.baud // 10_000_000)
        return "".join(chr(self._rng.randrange(33, 127)) for _ in range(min(n, 200)))

    def now(self) -> float:
        """The link's clock, in seconds: the lab's virtual time."""
        return self.lab.clock.now_us() / 1e6

    def receive(self, timeout: float) -> str | None:
        lab, clock = self.lab, self.lab.clock
        deadline = clock.now_us() + int(timeout * 1e6)
        while True:
            if self._queue and self._queue[0][0] <= clock.now_us():
                return heapq.heappop(self._queue)[2]
            if (noise := self._noise(deadline)) is not None:
                return noise
            nxt = self._queue[0][0] if self._queue else None
            if nxt is not None:
                self._advance_to(min(nxt, deadline))
            elif lab._busy() and clock.now_us() < deadline:
                t0 = clock.now_us()
                lab.step()  # the next tick that can change anything (settles skipped)
                self.line.stats.measuring_us += clock.now_us() - t0
            else:
                self._advance_to(deadline)  # silence: the host waited it out
                return None
            if clock.now_us() >= deadline and not (
                self._queue and self._queue[0][0] <= clock.now_us()
            ):
                return None

    def close(self) -> None:
        if self in self.lab._links:
            self.lab._links.remove(self)


class PtyBus:
    """Boards on their own pseudo-terminals (MicroPython processes: ``MicroPythonLab`` with
    ``bus=True``, whose flash holds bus.json) joined into one emulated bus in real time, and
    one pseudo-terminal for the host: the port of its USB–RS-485 adapter (``self.port``).

    A frame from the host reaches every board's port at once (its line time is counted, not
    waited: the boards' own handling is slower than the line); a board's frame waits for its
    slot, crosses the line (held back from the host until the line's time says it has),
    reaches the host and every other board (a bus drop hears everything). Lines a board's
    console prints that are not frames (the interpreter's banner) stay off the bus: a UART
    carries only what the firmware writes to it. A ``babbler`` garbles the frames its bursts
    overlap and sends the host its noise; a dead board is a board powered off
    (``MicroPythonBoard.power_cut``).
    """

    bus = True

    def __init__(self, ports: dict[int, str], slots: dict[int, int],
                 timing: BusTiming | None = None, name: str = "bus",
                 babbler: Babbler | None = None, seed: int = 0) -> None:  # fmt: skip
        import serial

        from insitu.emulator.ptyserve import raw_pty

        self.timing = timing or BusTiming()
        self.slots = dict(slots)
        self.name = name
        self._master, self._slave, self.port = raw_pty()
        self._boards = {bid: serial.serial_for_url(p, timeout=0) for bid, p in ports.items()}
        self._t0 = None
        self.line = _Line(self.timing, babbler=babbler)
        self._rng = random.Random(seed)
        self._noise_at = 0 if babbler is None else babbler.next_end(0)
        self._due: list[tuple[int, int, str]] = []  # (µs from start the host gets it, order, line)
        self._order = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="insitu-bus", daemon=True)

    @property
    def stats(self) -> BusStats:
        return self.line.stats

    def start(self) -> PtyBus:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for s in self._boards.values():
            s.close()
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> PtyBus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _now_us(self) -> int:
        return int((time.monotonic() - (self._t0 or 0.0)) * 1e6)

    def _to_boards(self, line: str, skip: int | None = None) -> None:
        data = line.encode("ascii", "replace") + b"\n"
        for bid, s in self._boards.items():
            if bid != skip:
                try:
                    s.write(data)
                except Exception:  # a board powered off: its port is gone, the bus goes on
                    pass

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._master, selectors.EVENT_READ, None)
        for bid, s in self._boards.items():
            sel.register(s.fileno(), selectors.EVENT_READ, bid)
        bufs: dict[int | None, bytearray] = {k: bytearray() for k in (None, *self._boards)}
        try:
            while not self._stop.is_set():
                wait = 0.05
                nxt = [self._due[0][0]] if self._due else []
                if self.line.babbler is not None:
                    nxt.append(self._noise_at)
                if nxt:
                    wait = max(0.0, min(wait, self._t0 + min(nxt) / 1e6 - time.monotonic()))
                for key, _ in sel.select(wait):
                    src = key.data
                    try:
                        chunk = (os.read(self._master, 65536) if src is None
                                 else self._boards[src].read(65536))  # fmt: skip
                    except (BlockingIOError, OSError):
                        continue
                    buf = bufs[src]
                    buf += chunk
                    while (nl := buf.find(b"\n")) >= 0:
                        text = bytes(buf[:nl]).rstrip(b"\r").decode("ascii", "replace")
                        del buf[: nl + 1]
                        self._carry(src, text)
                now = self._now_us()
                bab = self.line.babbler
                if bab is not None and now >= self._noise_at:  # a burst reaches the host
                    n = max(1, min(200, bab.burst_us * self.timing.baud // 10_000_000))
                    noise = "".join(chr(self._rng.randrange(33, 127)) for _ in range(n))
                    heapq.heappush(self._due, (now, self._order, noise))
                    self._order += 1
                    self._noise_at = bab.next_end(now + 1)
                while self._due and self._due[0][0] <= now:
                    line = heapq.heappop(self._due)[2]
                    try:
                        os.write(self._master, line.encode("ascii", "replace") + b"\r\n")
                    except OSError:
                        pass  # nobody on the host side: a line on a bus nobody listens to
        finally:
            sel.close()

    def _carry(self, src: int | None, text: str) -> None:
        now = self._now_us()
        if src is None:  # the host's adapter drives the line
            end, garbled = self.line.host(now, text)
            self._to_boards(_garble(text, self._rng) if garbled else text)
            return
        if "@" not in text:
            return  # the unix port's console, not the firmware's UART
        end, garbled = self.line.board(now, self.slots[src], text)
        if garbled:
            text = _garble(text, self._rng)
        heapq.heappush(self._due, (end, self._order, text))
        self._order += 1
        self._to_boards(text, skip=src)
