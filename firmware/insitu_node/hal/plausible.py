"""An HX711 word's plausibility check, shared by the HX711 driver (hx711.py) and the emulated
HAL's strain channels (emu.py), so a board on the bus reads what a board on its pins reads."""

from ..compat import const

JUMP = const(1048576)  # 2**20 counts: 0.12 mm per conversion on the kit's flexure


def accept(s, v, j):
    """Word v for sensor s (its _last, _prev, dropped), jump limit j: v, or None when dropped.
    A word that jumps more than j from the last accepted one, or is the all-ones / all-zeros
    pattern of a DOUT line held through the shift, passes only if the word before agrees."""
    prev = s._prev
    s._prev = v
    last = s._last
    if v == -1 or v == 0:  # DOUT high / low through the shift: only an exact repeat
        ok = prev == v
    else:  # a jump from the last accepted word needs the word before to agree
        ok = last is None or abs(v - last) <= j or prev is not None and abs(v - prev) <= j
    if not ok:
        s.dropped += 1
        return None
    s._last = v
    return v
