"""Boot-time assembly: storage, boot counter, config (with a fallback), HAL, node."""

from .. import persist
from ..config import ConfigError, load_text, validate
from ..hal.interfaces import Hal
from ..hal.storage import FileStorage
from ..node import Node

CONFIG = "config.json"


def board_uid():
    try:
        import machine
        from ubinascii import hexlify

        return hexlify(machine.unique_id()).decode()
    except Exception:  # unix port: no unique id
        return "unknown"


_CAUSES = (
    ("pwron", "PWRON_RESET"),
    ("hard", "HARD_RESET"),
    ("wdt", "WDT_RESET"),
    ("deepsleep", "DEEPSLEEP_RESET"),
    ("soft", "SOFT_RESET"),
)


def reset_cause():
    """Why the board started: "pwron", "hard", "wdt", "deepsleep", "soft" (by the port's own
    machine constants: rp2 and esp32 number them differently), the number if unknown, or
    None where machine has no reset_cause (the unix port)."""
    try:
        import machine

        c = machine.reset_cause()
    except Exception:
        return None
    for name, const in _CAUSES:
        if getattr(machine, const, None) == c:
            return name
    return c


def outputs_off(node):
    """The known state at boot, whatever the reset interrupted: every force off and every
    clamp released (a reset does not guarantee it: an actuator driver may latch its last
    command). Stiffness is what Node() restored from the last checkpoint."""
    for f in node.hal.force:
        f.off()
    for c in node.hal.clamp:
        c.release()


def build_hal(cfg, storage):
    fam = cfg["family"]
    if fam == "emu":
        from ..hal import emu

        return emu.build(cfg, None, storage, board_uid())
    if fam == "rp2":
        from ..hal import rp2 as family
    else:
        from ..hal import esp32 as family
    from ..hal import board

    return board.build(cfg, family, storage)


def make_node(root=""):
    """Node from config.json; a missing/invalid config gives a device-less node that still
    answers identify (with cfg_err) so the host can see what is wrong."""
    storage = FileStorage(root)
    boots = persist.bump_boots(storage)
    text = storage.read(CONFIG)
    err = None
    try:
        if text is None:
            raise ConfigError("", "missing " + CONFIG)
        cfg, h = load_text(text.decode())
        hal = build_hal(cfg, storage)
    except Exception as e:  # ConfigError, or a pin the board does not have
        a = e.args
        err = f"{a[0]}: {a[1]}" if len(a) == 2 else f"{type(e).__name__} {a}"
        cfg, h = validate({"node": "unconfigured"}), "00000000"
        hal = Hal("none", board_uid(), storage)
    return Node(cfg, hal, h, boots, err), cfg
