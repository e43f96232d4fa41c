"""Every request op and its arguments, as data (docs/protocol.md is the prose of this table).

A field spec is a tuple (kind, lo, hi, default); default REQUIRED means the field must be
present, None means optional with no value. Ranges are inclusive. Ranges that depend on the
node's own configuration (slot numbers, stiffness bounds, actuator range) are checked by the
node after this table.
"""

from ..compat import const

INT = const(1)
FLOAT = const(2)  # finite number; ints accepted
BOOL = const(3)
ENUM = const(4)  # lo holds the tuple of allowed strings
FLOATS = const(5)  # list of finite numbers, length lo..hi

REQUIRED = "<required>"

PHASES = ("forward", "adjoint", "free", "clamped", "nudged")
RULES = ("adjoint", "coupled", "incremental", "spsa")
OPTIMISERS = ("sgd", "momentum", "adam")
STATE_KEYS = ("k", "kb", "e", "u", "g", "count", "kind", "opt", "raw", "health", "faults",
              "busy", "safe", "kr")

_BIG = 1e12


def measure_deadline_ms(n):
    """How long a node samples ``n`` conversions after its settle before it gives up and
    answers err (an HX711 at 10 SPS needs 100 ms a sample). The one owner: the node applies
    it when a measure or check names no timeout_ms, the host waits a little longer."""
    return 1000 + 250 * n


SCHEMA = {
    "ping": {},
    "identify": {},
    "configure": {
        "timeout_ms": (INT, 0, 3600000, None),  # host-silence timeout, 0 = never
        "period_ms": (INT, 1, 1000, None),
        "slot": (INT, 0, 63, None),
        "gain": (FLOAT, -1.0, 1.0, None),  # metres per count; 0 rejected by the node
        "offset": (INT, -16777216, 16777216, None),
        "tare": (BOOL, 0, 1, None),
        "noise": (INT, 0, 16777216, None),  # noisy-sensor limit, counts of spread (0 = off)
    },
    "measure": {
        "phase": (ENUM, PHASES, None, REQUIRED),
        "tag": (INT, 0, 65535, 0),
        "n": (INT, 1, 64, 1),  # 64 x 24-bit counts still sum to a small int on a board
        "settle_ms": (INT, 0, 120000, 0),  # 10 tau of a slow rig; reset aborts
        "timeout_ms": (INT, 1, 120000, None),
        "scale": (FLOAT, -_BIG, _BIG, 1.0),
        "eta": (FLOAT, 1e-12, _BIG, None),
        "eps": (FLOAT, 1e-12, _BIG, None),
        "v": (BOOL, 0, 1, False),  # also report this node's elongations
        # settle until still: strain means of consecutive 200 ms windows within calm counts
        "calm": (INT, 0, 16777216, 0),  # 0 = wait settle_ms (with calm: the cap)
    },
    "force": {
        "axis": (INT, 0, 7, None),
        "f": (FLOAT, -1e3, 1e3, None),  # newtons
        "off": (BOOL, 0, 1, False),
    },
    "clamp": {
        "axis": (INT, 0, 7, REQUIRED),
        "u": (FLOAT, -1.0, 1.0, None),  # metres; absent = hold where it is now
    },
    "release": {"axis": (INT, 0, 7, None)},  # absent = every clamp
    "update": {
        "rule": (ENUM, RULES, None, REQUIRED),
        "lr": (FLOAT, 1e-300, _BIG, REQUIRED),
        "opt": (ENUM, OPTIMISERS, None, "sgd"),
        "mu": (FLOAT, 0.0, 0.999999, 0.9),
        "b1": (FLOAT, 0.0, 0.999999, 0.9),
        "b2": (FLOAT, 0.0, 0.999999999, 0.999),
        "eps": (FLOAT, 1e-300, 1.0, 1e-8),
        "batch": (INT, 1, 65535, None),
        "lp": (FLOAT, -_BIG, _BIG, None),  # SPSA: loss with +c perturbation
        "lm": (FLOAT, -_BIG, _BIG, None),  # SPSA: loss with -c perturbation
    },
    "set": {
        "k": (FLOATS, 1, 64, REQUIRED),  # one per bond, or one value with "slot"
        "slot": (INT, 0, 63, None),
    },
    "perturb": {
        "seed": (INT, 0, 999999999, REQUIRED),
        "c": (FLOAT, 0.0, _BIG, REQUIRED),
        "sign": (INT, -1, 1, REQUIRED),  # +1, -1: perturbed; 0: back to the base stiffness
    },
    "state": {"only": (ENUM, STATE_KEYS, None, None)},  # one field (a short reply)
    "save": {"step": (INT, 0, 999999999, None)},  # the host's checkpoint number
    "load": {"step": (INT, 0, 999999999, REQUIRED)},  # back to that saved checkpoint
    "check": {  # response check of one bond's stiffness element, under the load the host set
        "slot": (INT, 0, 63, REQUIRED),
        "k": (FLOAT, 1e-12, _BIG, None),  # probe stiffness; absent = the farther bound
        "n": (INT, 1, 64, 4),
        "settle_ms": (INT, 0, 120000, 0),  # after each stiffness change (servo travel + creep)
        "timeout_ms": (INT, 1, 120000, None),
        "rel": (FLOAT, 0.0, 1.0, 0.02),  # smallest relative change of |e| that counts
        "e_min": (FLOAT, 0.0, 1.0, 2e-6),  # metres: less elongation than this is not judged
    },
    "cal": {  # node-held calibration (docs/protocol.md "cal"); id last marks it complete
        "slot": (INT, 0, 63, None),  # bond slot of the stiffness map kr -> kc
        "kr": (FLOATS, 2, 8, None),  # realised stiffness (N/m), increasing
        "kc": (FLOATS, 2, 8, None),  # nominal command realising it, increasing, in k bounds
        "axis": (INT, 0, 7, None),  # force axis of "f"
        # [scale 0.1..10, offset N within +/-10]: true = scale * commanded + offset while
        # energised, so the node commands (F - offset) / scale for a force F
        "f": (FLOATS, 2, 2, None),
        # the host's calibration id, sent last: calibrated from now on; 0 first: forget every
        # map and force scale, gains and offsets back to the config's
        "id": (INT, 0, 999999999, None),
    },
    "reset": {
        "opt": (BOOL, 0, 1, False),  # also forget optimiser moments
        "k": (BOOL, 0, 1, False),  # also return stiffness to k_init
        "faults": (BOOL, 0, 1, False),  # also forget latched sensor faults
    },
}
