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
