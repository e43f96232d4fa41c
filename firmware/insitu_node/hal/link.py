"""The USB serial link as lines: non-blocking reads of sys.stdin via select.poll.

stream.read(n) blocks until n bytes, so one byte is read per ready poll. Ctrl-C stays
enabled: mpremote can always interrupt main.py (the protocol is ASCII lines).
"""

import select
import sys

from ..compat import const

_NL = const(10)
_CR = const(13)


class StdioLink:
    def __init__(self, max_line=2048):
        self._in = getattr(sys.stdin, "buffer", sys.stdin)
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._buf = bytearray()
        self._max = max_line
        self._overflow = False
        self.dropped = 0  # over-long lines discarded

    def lines(self):
        """Complete lines received so far (bytes, without terminator); never blocks."""
        out = []
        while self._poll.poll(0):
            b = self._in.read(1)
            if not b:
                break
            c = b[0] if not isinstance(b, int) else b
            if c == _NL:
                if self._overflow:
                    self.dropped += 1
                else:
                    out.append(bytes(self._buf))
                self._buf = bytearray()
                self._overflow = False
            elif c == _CR:
                continue
            elif len(self._buf) < self._max:
                self._buf.append(c)
            else:
                self._overflow = True
        return out

    def write(self, line):
        sys.stdout.write(line)
        sys.stdout.write("\n")
