"""Force actuator (open loop, command per newton) and clamp (position hold on a target
count). Both write through a sink so boards and the emulator share the conversion."""


class Force:
    def __init__(self, cmd_per_n, max_n, sink):
        self._cmd_per_n = cmd_per_n
        self.max_n = max_n
        self._sink = sink
        self.cmd = 0

    def set(self, newtons):
        self.cmd = int(round(newtons * self._cmd_per_n))
        self._sink(self.cmd)
        return self.cmd

    def off(self):
        self.cmd = 0
        self._sink(0)


class Clamp:
    def __init__(self, hold_sink, release_sink):
        self._hold = hold_sink
        self._release = release_sink
        self.held = False
        self.target = 0

    def hold(self, target_raw):
        self.target = target_raw
        self.held = True
        self._hold(target_raw)

    def release(self):
        self.held = False
        self._release(0)
