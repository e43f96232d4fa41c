"""Hardware watchdog, only if the config enables it and only after a boot grace period:
a started WDT cannot be stopped, and a deploy that interrupts main.py must not be reset
mid-copy. Host silence (safe state) is handled by the node core's tick."""

from ..compat import ticks_diff, ticks_ms


class Watchdog:
    def __init__(self, wdt_cfg):
        self._cfg = wdt_cfg
        self._t0 = ticks_ms()
        self._wdt = None

    def poll(self):
        c = self._cfg
        if not c["enable"]:
            return
        if self._wdt is None:
            if ticks_diff(ticks_ms(), self._t0) < c["grace_ms"]:
                return
            from machine import WDT

            self._wdt = WDT(timeout=c["timeout_ms"])
        self._wdt.feed()
