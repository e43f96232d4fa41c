"""Servo stiffness element: the servo sets an effective spring length; a calibration table
(k, pulse us), increasing in k, maps stiffness to pulse width by linear interpolation."""


def k_to_us(table, k):
    """Pulse width (int us) for stiffness k; clamps to the table's ends."""
    if k <= table[0][0]:
        return table[0][1]
    for i in range(1, len(table)):
        k1, u1 = table[i]
        if k <= k1:
            k0, u0 = table[i - 1]
            return int(u0 + (u1 - u0) * (k - k0) / (k1 - k0) + 0.5)
    return table[-1][1]


class Servo:
    def __init__(self, table, sink):
        self._table = table
        self._sink = sink  # int pulse width in us -> hardware (PWM) or emulator bus
        self.cmd = 0

    def set_k(self, k, gain, offset):
        self.cmd = k_to_us(self._table, k)
        self._sink(self.cmd)
        return self.cmd

    def control(self, raw):
        pass  # a servo holds its position by itself
