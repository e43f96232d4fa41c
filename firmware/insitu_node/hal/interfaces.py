"""The device interfaces the node core uses (duck-typed: MicroPython has no abc).

Sensors (strain, displacement):  poll() -> raw signed count (int), or None if no new sample.
    Never blocks. Raw counts only; conversion to metres happens in the node core from config
    calibration, so real and emulated boards run the same conversion.
Stiffness element:  set_k(k, gain, offset) -> int command written (pulse us or loop gain);
    control(raw) -> None, called every control tick with the slot's latest strain count
    (only the virtual spring does work there; it must not allocate).
Force actuator:     set(newtons) -> int command; off().
Clamp:              hold(target_raw); release().
Storage:            read(name) -> bytes or None; write(name, data); rename(a, b); remove(name).
Hal container:      family, uid, strain[], element[], force[], clamp[], disp[], storage.
"""


class Hal:
    def __init__(self, family, uid, storage):
        self.family = family
        self.uid = uid
        self.storage = storage
        self.strain = []
        self.element = []
        self.force = []
        self.clamp = []
        self.disp = []
