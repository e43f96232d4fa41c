"""Assemble a Hal for a real board from the validated config and a family's pin factories.

A family module (rp2.py, esp32.py) provides: pin_in(n), pin_out(n), pwm(n, freq), adc(n),
uid(). Everything else (which driver for which config entry) is shared here.
"""

from .interfaces import Hal

# drivers are imported when the config uses them (as hal/emu.py did): a board's heap holds
# the code of its own parts only

SERVO_HZ = 50
COIL_HZ = 20000  # RP2040: keep on a different PWM slice from any 50 Hz servo


def _sensor(fam, s):
    p = s["pins"]
    if s["type"] == "hx711":
        from .hx711 import HX711

        return HX711(fam.pin_in(p["dout"]), fam.pin_out(p["sck"]), s["gain"])
    if s["type"] == "adc":
        from .adcbridge import ADCBridge

        return ADCBridge(fam.adc(p["adc"]), s["over"])
    raise ValueError("sensor type {} on a board".format(s["type"]))


def servo_sink(fam, pin):
    pwm = fam.pwm(pin, SERVO_HZ)

    def sink(us):
        pwm.duty_ns(us * 1000)

    return sink


def hbridge_sink(fam, pins):
    # signed command: direction pin + 16-bit duty
    pwm = fam.pwm(pins["pwm"], COIL_HZ)
    dirp = fam.pin_out(pins["dir"])

    def sink(c):
        if c < 0:
            dirp.value(1)
            c = -c
        else:
            dirp.value(0)
        pwm.duty_u16(c if c < 65535 else 65535)

    return sink


def build(cfg, fam, storage):
    hal = Hal(cfg["family"], fam.uid(), storage)
    for b in cfg["bonds"]:
        hal.strain.append(_sensor(fam, b["sensor"]))
        el = b["element"]
        if el["type"] == "servo":
            from .servo import Servo

            hal.element.append(Servo(el["table"], servo_sink(fam, el["pins"]["pwm"])))
        else:
            from .coil import VirtualSpring

            sink = hbridge_sink(fam, el["pins"])
            vs = VirtualSpring(el["cmd_per_n"], el["max_cmd"], sink, el.get("flex_k", 0))
            hal.element.append(vs)
    if cfg["force"] or cfg["clamp"]:
        from .actuators import Clamp, Force
    for a in cfg["force"]:
        hal.force.append(Force(a["cmd_per_n"], a["max_n"], hbridge_sink(fam, a["pins"])))
    for a in cfg["clamp"]:
        # brake-type clamp: a lock pin holds the axis where it is (target is advisory)
        lock = fam.pin_out(a["pins"]["lock"])
        lock.value(0)
        hal.clamp.append(Clamp(lambda t, p=lock: p.value(1), lambda _, p=lock: p.value(0)))
    for a in cfg["disp"]:
        hal.disp.append(_sensor(fam, a["sensor"]))
    return hal
