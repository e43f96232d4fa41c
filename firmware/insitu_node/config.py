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


class ConfigError(ValueError):
    """Raised as ConfigError(field, reason); read them with .args (MicroPython exceptions take no
    new attributes)."""


def canonical(obj):
    """Canonical JSON text: sorted keys, no spaces (json.dumps has no sort_keys on MicroPython)."""
    if isinstance(obj, dict):
        keys = sorted(obj)
        return "{" + ",".join(json.dumps(k) + ":" + canonical(obj[k]) for k in keys) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(canonical(x) for x in obj) + "]"
    return json.dumps(obj)


def config_hash(text):
    """CRC-32 (8 hex digits) of the config text as deployed, trailing whitespace ignored."""
    return f"{crc32(text.rstrip().encode()):08x}"


def _get(d, key, path, kind, default=None, lo=None, hi=None):
    name = path + key
    if key not in d:
        if default is None:
            raise ConfigError(name, "required")
        return default
    v = d[key]
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


def _pins(d, path):
    pins = _get(d, "pins", path, dict, {})
    for name in pins:
        _get(pins, name, path + "pins.", int, lo=0, hi=255)
    return pins


def _cal(d, path):
    cal = _get(d, "cal", path, dict, {})
    p = path + "cal."
    gain = _get(cal, "gain", p, float, 1.0)
    if gain == 0.0:
        raise ConfigError(p + "gain", "zero")
    return {"gain": gain, "offset": _get(cal, "offset", p, int, 0, -16777216, 16777216)}


def _sensor(d, path):
    s = _get(d, "sensor", path, dict, {"type": "emu"})
    p = path + "sensor."
    t = _get(s, "type", p, str)
    if t not in SENSORS:
        raise ConfigError(p + "type", "not one of " + "|".join(SENSORS))
    out = {"type": t, "pins": _pins(s, p)}
    if t == "hx711":
        out["gain"] = _get(s, "gain", p, int, 128)
        if out["gain"] not in HX711_GAINS:
            raise ConfigError(p + "gain", "not 128|64|32")
    if t == "adc":
        out["over"] = _get(s, "over", p, int, 16, 1, 256)
    if t == "emu":
        # an ideal emulated sensor reports float counts (no quantisation); boards never do
        out["float"] = _get(s, "float", p, bool, False)
    return out


def _table(e, p):
    tab = _get(e, "table", p, list)
    if len(tab) < 2:
        raise ConfigError(p + "table", "needs >= 2 points")
    out = []
    for i in range(len(tab)):
        row = tab[i]
        name = f"{p}table[{i}]"
        if type(row) is not list or len(row) != 2:
            raise ConfigError(name, "not [k, us]")
        k = _get({"k": row[0]}, "k", name + ".", float)
        us = _get({"us": row[1]}, "us", name + ".", int, lo=100, hi=5000)
        if out and k <= out[-1][0]:
            raise ConfigError(name, "k not increasing")
        out.append((k, us))
    return out


def _element(d, path):
    e = _get(d, "element", path, dict)
    p = path + "element."
    t = _get(e, "type", p, str)
    if t not in ELEMENTS:
        raise ConfigError(p + "type", "not one of " + "|".join(ELEMENTS))
    out = {"type": t, "pins": _pins(e, p)}
    if t == "servo":
        out["table"] = _table(e, p)
    else:
        out["cmd_per_n"] = _get(e, "cmd_per_n", p, float, lo=1e-9)
        out["max_cmd"] = _get(e, "max_cmd", p, int, 65535, 1, 1 << 20)
    return out


def _bond(d, idx, slots):
    path = f"bonds[{idx}]."
    if type(d) is not dict:
        raise ConfigError(path[:-1], "not an object")
    slot = _get(d, "slot", path, int, lo=0, hi=MAX_BONDS - 1)
    if slot in slots:
        raise ConfigError(path + "slot", "duplicate")
    ij = _get(d, "bond", path, list)
    if len(ij) != 2 or type(ij[0]) is not int or type(ij[1]) is not int:
        raise ConfigError(path + "bond", "not [i, j]")
    k_min = _get(d, "k_min", path, float, lo=0.0)
    k_max = _get(d, "k_max", path, float)
    if not k_max > k_min:
        raise ConfigError(path + "k_max", "not above k_min")
    k_init = _get(d, "k_init", path, float, lo=k_min, hi=k_max)
    el = _element(d, path)
    if el["type"] == "servo" and (el["table"][0][0] > k_min or el["table"][-1][0] < k_max):
        raise ConfigError(path + "element.table", "does not cover [k_min, k_max]")
    return {
        "slot": slot,
        "bond": (ij[0], ij[1]),
        "rest": _get(d, "rest", path, float, 0.0, 0.0),
        "k_min": k_min,
        "k_max": k_max,
        "k_init": k_init,
        "sensor": _sensor(d, path),
        "cal": _cal(d, path),
        "element": el,
    }


def _axes(cfg, key):
    items = _get(cfg, key, "", list, [])
    if len(items) > MAX_AXES:
        raise ConfigError(key, f"more than {MAX_AXES}")
    out = []
    seen = []
    for i in range(len(items)):
        d = items[i]
        path = f"{key}[{i}]."
        if type(d) is not dict:
            raise ConfigError(path[:-1], "not an object")
        axis = _get(d, "axis", path, int, lo=0, hi=MAX_AXES - 1)
        if axis in seen:
            raise ConfigError(path + "axis", "duplicate")
        seen.append(axis)
        a = {"axis": axis, "pins": _pins(d, path), "node": _get(d, "node", path, int, -1)}
        a["dir"] = _get(d, "dir", path, str, "y")
        if key == "force":
            a["cmd_per_n"] = _get(d, "cmd_per_n", path, float, lo=1e-9)
            a["max_n"] = _get(d, "max_n", path, float, lo=0.0)
        else:
            a["cal"] = _cal(d, path)
        if key == "disp":
            a["sensor"] = _sensor(d, path)
        out.append(a)
    out.sort(key=lambda a: a["axis"])
    for i in range(len(out)):  # axes are dense so they index arrays directly
        if out[i]["axis"] != i:
            raise ConfigError(key, f"axes not 0..{len(out) - 1}")
    return out


def validate(cfg):
    """Normalised copy of a config dict; raises ConfigError(field path, reason)."""
    if type(cfg) is not dict:
        raise ConfigError("", "not an object")
    v = _get(cfg, "v", "", int, CONFIG_VERSION)
    if v != CONFIG_VERSION:
        raise ConfigError("v", "unsupported version")
    node = _get(cfg, "node", "", str)
    if node == "*" or not valid_addr(node):
        raise ConfigError("node", "not a token [A-Za-z0-9_.-]{1,16}")
    fam = _get(cfg, "family", "", str, "emu")
    if fam not in FAMILIES:
        raise ConfigError("family", "not one of " + "|".join(FAMILIES))
    raw = _get(cfg, "bonds", "", list, [])
    if len(raw) > MAX_BONDS:
        raise ConfigError("bonds", f"more than {MAX_BONDS}")
    bonds = []
    slots = []
    for i in range(len(raw)):
        b = _bond(raw[i], i, slots)
        slots.append(b["slot"])
        bonds.append(b)
    bonds.sort(key=lambda b: b["slot"])
    for i in range(len(bonds)):
        if bonds[i]["slot"] != i:
            raise ConfigError("bonds", f"slots not 0..{len(bonds) - 1}")
    wdt = _get(cfg, "wdt", "", dict, {})
    return {
        "v": v,
        "node": node,
        "family": fam,
        "period_ms": _get(cfg, "period_ms", "", int, 10, 1, 1000),
        "timeout_ms": _get(cfg, "timeout_ms", "", int, 5000, 0, 3600000),
        "tags": _get(cfg, "tags", "", int, 16, 1, 64),
        "safe_release": _get(cfg, "safe_release", "", bool, True),
        "wdt": {
            "enable": _get(wdt, "enable", "wdt.", bool, False),
            "timeout_ms": _get(wdt, "timeout_ms", "wdt.", int, 8000, 100, 8388),
            "grace_ms": _get(wdt, "grace_ms", "wdt.", int, 60000, 0, 3600000),
        },
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
