"""Node configuration (config.json on the board): validation, defaults, canonical hash.

Pure logic. The deploy tool writes the file as canonical JSON (sorted keys, no spaces); the
node reports CRC-32 of that text as its config hash, so host and node agree without either
re-formatting floats. The schema is documented in docs/firmware.md.
"""

import json

from .compat import const, crc32
from .protocol.codec import valid_addr

CONFIG_VERSION = const(1)
MAX_BONDS = const(16)
MAX_AXES = const(8)
FAMILIES = ("rp2", "esp32", "emu")
SENSORS = ("hx711", "adc", "emu")
ELEMENTS = ("servo", "coil")
HX711_GAINS = (128, 64, 32)
# servo pulse range (us) unless the pin map declares the servo's own within 100..5000
_US_LO = const(500)
_US_HI = const(2500)


class ConfigError(ValueError):
    """Raised as ConfigError(field, reason); read them with .args (MicroPython exceptions take no
    new attributes)."""


def canonical(obj):
    """Canonical JSON text: sorted keys, no spaces (json.dumps has no sort_keys on MicroPython)."""
    out = []
    _emit(obj, out)
    return "".join(out)  # one string: no nested partial texts built and thrown away


def _emit(obj, out):
    if isinstance(obj, dict):
        out.append("{")
        sep = ""
        for k in sorted(obj):
            out.append(sep)
            out.append(json.dumps(k))
            out.append(":")
            _emit(obj[k], out)
            sep = ","
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i in range(len(obj)):
            if i:
                out.append(",")
            _emit(obj[i], out)
        out.append("]")
    else:
        out.append(json.dumps(obj))


def config_hash(text):
    """CRC-32 (8 hex digits) of the config text as deployed, trailing whitespace ignored."""
    return f"{crc32(text.rstrip().encode()):08x}"


# Validation allocates only what it returns: a field's path ("bonds[2].cal.gain") is built
# only for an error, level by level as the ConfigError travels up through _at().
_ABSENT = {}  # read-only stand-in for an absent sub-object; never returned


def _at(prefix, e):
    """ConfigError e, raised inside `prefix`, renamed for the level above."""
    field, reason = e.args
    return ConfigError(prefix + "." + field if field else prefix, reason)


def _value(v, name, kind, lo=None, hi=None):
    if kind is float:
        if type(v) is bool or type(v) not in (int, float) or not (v == v and v - v == 0):
            raise ConfigError(name, "not a finite number")
        v = float(v)
    elif kind is int:
        if type(v) is not int:
            raise ConfigError(name, "not an integer")
    elif type(v) is not kind:
        raise ConfigError(name, "wrong type")
    if lo is not None and v < lo:
        raise ConfigError(name, f"below {lo}")
    if hi is not None and v > hi:
        raise ConfigError(name, f"above {hi}")
    return v


def _get(d, key, kind, default=None, lo=None, hi=None):
    if key not in d:
        if default is None:
            raise ConfigError(key, "required")
        return default
    return _value(d[key], key, kind, lo, hi)


def _pins(d):
    pins = _get(d, "pins", dict, _ABSENT)
    if pins is _ABSENT:
        return {}
    try:
        for name in pins:
            _get(pins, name, int, lo=0, hi=255)
    except ConfigError as e:
        raise _at("pins", e)
    return pins


def _cal(d):
    cal = _get(d, "cal", dict, _ABSENT)
    try:
        gain = _get(cal, "gain", float, 1.0)
        if gain == 0.0:
            raise ConfigError("gain", "zero")
        return {"gain": gain, "offset": _get(cal, "offset", int, 0, -16777216, 16777216)}
    except ConfigError as e:
        raise _at("cal", e)


def _sensor(d):
    s = _get(d, "sensor", dict, _ABSENT)
    try:
        t = _get(s, "type", str, "emu" if s is _ABSENT else None)
        if t not in SENSORS:
            raise ConfigError("type", "not one of " + "|".join(SENSORS))
        out = {"type": t, "pins": _pins(s)}
        if t == "hx711":
            out["gain"] = _get(s, "gain", int, 128)
            if out["gain"] not in HX711_GAINS:
                raise ConfigError("gain", "not 128|64|32")
        if t == "adc":
            out["over"] = _get(s, "over", int, 16, 1, 256)
        if t == "emu":
            # an ideal emulated sensor reports float counts (no quantisation); boards never do
            out["float"] = _get(s, "float", bool, False)
        return out
    except ConfigError as e:
        raise _at("sensor", e)


def _row(row, prev, lo, hi):
    if type(row) is not list or len(row) != 2:
        raise ConfigError("", "not [k, us]")
    k = _value(row[0], "k", float)
    us = _value(row[1], "us", int, lo, hi)
    if prev and k <= prev[-1][0]:
        raise ConfigError("", "k not increasing")
    return (k, us)


def _table(e, lo, hi):
    tab = _get(e, "table", list)
    if len(tab) < 2:
        raise ConfigError("table", "needs >= 2 points")
    out = []
    for i in range(len(tab)):
        try:
            out.append(_row(tab[i], out, lo, hi))
        except ConfigError as err:
            raise _at(f"table[{i}]", err)
    return out


def _element(d):
    e = _get(d, "element", dict)
    try:
        t = _get(e, "type", str)
        if t not in ELEMENTS:
            raise ConfigError("type", "not one of " + "|".join(ELEMENTS))
        out = {"type": t, "pins": _pins(e)}
        if t == "servo":
            # pulse limits: the RC default unless the pin map wrote the servo's own (us_min/max)
            lo = _get(e, "us_min", int, _US_LO, 100, 5000)
            out["table"] = _table(e, lo, _get(e, "us_max", int, _US_HI, lo, 5000))
        else:
            out["cmd_per_n"] = _get(e, "cmd_per_n", float, lo=1e-9)
            out["max_cmd"] = _get(e, "max_cmd", int, 65535, 1, 1 << 20)
            if "flex_k" in e:  # the sensing flexure's k_s (N/m); absent: 0, no dict entry
                out["flex_k"] = _get(e, "flex_k", float, lo=0.0)
        return out
    except ConfigError as err:
        raise _at("element", err)


def _bond(d, slots):
    """A validated bond; slots: bit mask of the slots taken so far."""
    if type(d) is not dict:
        raise ConfigError("", "not an object")
    slot = _get(d, "slot", int, lo=0, hi=MAX_BONDS - 1)
    if slots >> slot & 1:
        raise ConfigError("slot", "duplicate")
    ij = _get(d, "bond", list)
    if len(ij) != 2 or type(ij[0]) is not int or type(ij[1]) is not int:
        raise ConfigError("bond", "not [i, j]")
    k_min = _get(d, "k_min", float, lo=0.0)
    k_max = _get(d, "k_max", float)
    if not k_max > k_min:
        raise ConfigError("k_max", "not above k_min")
    k_init = _get(d, "k_init", float, lo=k_min, hi=k_max)
    el = _element(d)
    if el["type"] == "servo" and (el["table"][0][0] > k_min or el["table"][-1][0] < k_max):
        raise ConfigError("element.table", "does not cover [k_min, k_max]")
    return {
        "slot": slot,
        "bond": (ij[0], ij[1]),
        "rest": _get(d, "rest", float, 0.0, 0.0),
        "k_min": k_min,
        "k_max": k_max,
        "k_init": k_init,
        "sensor": _sensor(d),
        "cal": _cal(d),
        "element": el,
    }


def _axis(d, key, seen):
    """A validated axis of `key` (force, clamp, disp); seen: bit mask of the axes so far."""
    if type(d) is not dict:
        raise ConfigError("", "not an object")
    axis = _get(d, "axis", int, lo=0, hi=MAX_AXES - 1)
    if seen >> axis & 1:
        raise ConfigError("axis", "duplicate")
    a = {"axis": axis, "pins": _pins(d), "node": _get(d, "node", int, -1)}
    a["dir"] = _get(d, "dir", str, "y")
    if key == "force":
        a["cmd_per_n"] = _get(d, "cmd_per_n", float, lo=1e-9)
        a["max_n"] = _get(d, "max_n", float, lo=0.0)
    else:
        a["cal"] = _cal(d)
    if key == "disp":
        a["sensor"] = _sensor(d)
    return a


def _axes(cfg, key):
    items = _get(cfg, key, list, ())
    if len(items) > MAX_AXES:
        raise ConfigError(key, f"more than {MAX_AXES}")
    out = []
    seen = 0
    for i in range(len(items)):
        try:
            a = _axis(items[i], key, seen)
        except ConfigError as e:
            raise _at(f"{key}[{i}]", e)
        seen |= 1 << a["axis"]
        out.append(a)
    out.sort(key=lambda a: a["axis"])
    for i in range(len(out)):  # axes are dense so they index arrays directly
        if out[i]["axis"] != i:
            raise ConfigError(key, f"axes not 0..{len(out) - 1}")
    return out


def _wdt(wdt, fam):
    # machine.WDT limits: ESP32 at least 1 s (esp32 ports have passed timeout_ms // 1000 s to
    # the IDF task watchdog, refusing 0); the RP2040's 24-bit counter runs down twice per us
    # (datasheet errata), 2**24 / 2 us = 8388 ms (MicroPython docs), also kept on RP2350
    lo, hi = (1000, 3600000) if fam == "esp32" else (100, 8388)
    try:
        return {
            "enable": _get(wdt, "enable", bool, False),
            "timeout_ms": _get(wdt, "timeout_ms", int, 8000, lo, hi),
            "grace_ms": _get(wdt, "grace_ms", int, 60000, 0, 3600000),
        }
    except ConfigError as e:
        raise _at("wdt", e)


def validate(cfg):
    """Normalised copy of a config dict; raises ConfigError(field path, reason)."""
    if type(cfg) is not dict:
        raise ConfigError("", "not an object")
    v = _get(cfg, "v", int, CONFIG_VERSION)
    if v != CONFIG_VERSION:
        raise ConfigError("v", "unsupported version")
    node = _get(cfg, "node", str)
    if node == "*" or not valid_addr(node):
        raise ConfigError("node", "not a token [A-Za-z0-9_.-]{1,16}")
    fam = _get(cfg, "family", str, "emu")
    if fam not in FAMILIES:
        raise ConfigError("family", "not one of " + "|".join(FAMILIES))
    raw = _get(cfg, "bonds", list, ())
    if len(raw) > MAX_BONDS:
        raise ConfigError("bonds", f"more than {MAX_BONDS}")
    bonds = []
    slots = 0
    for i in range(len(raw)):
        try:
            b = _bond(raw[i], slots)
        except ConfigError as e:
            raise _at(f"bonds[{i}]", e)
        slots |= 1 << b["slot"]
        bonds.append(b)
    bonds.sort(key=lambda b: b["slot"])
    for i in range(len(bonds)):
        if bonds[i]["slot"] != i:
            raise ConfigError("bonds", f"slots not 0..{len(bonds) - 1}")
    wdt = _get(cfg, "wdt", dict, _ABSENT)
    return {
        "v": v,
        "node": node,
        "family": fam,
        "period_ms": _get(cfg, "period_ms", int, 10, 1, 1000),
        "timeout_ms": _get(cfg, "timeout_ms", int, 5000, 0, 3600000),
        "tags": _get(cfg, "tags", int, 16, 1, 64),
        "safe_release": _get(cfg, "safe_release", bool, True),
        "wdt": _wdt(wdt, fam),
        "bonds": bonds,
        "force": _axes(cfg, "force"),
        "clamp": _axes(cfg, "clamp"),
        "disp": _axes(cfg, "disp"),
    }


def load_text(text):
    """(validated config, hash) from the text of config.json."""
    try:
        cfg = json.loads(text)
    except Exception:
        raise ConfigError("", "not JSON") from None
    return validate(cfg), config_hash(text)


def from_dict(cfg):
    """(validated config, hash) for a config given as a dict (emulator, tests)."""
    return validate(cfg), config_hash(canonical(cfg))
