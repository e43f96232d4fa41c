"""Learned state on flash, atomically: write a temp file, keep the previous good copy, rename.

File format: 8 hex digits of CRC-32 of the JSON text, a newline, then the JSON text. On load a
corrupt or missing main file falls back to the backup, then to config defaults; the outcome
("ok", "backup", "new", "defaults") is reported in identify.
"""

import json

from .compat import crc32

MAIN = "state.json"
BACKUP = "state.bak"
TEMP = "state.tmp"
BOOTS = "boots.txt"


def pack(record):
    text = json.dumps(record)
    return (f"{crc32(text.encode()):08x}\n{text}").encode()


def unpack(data):
    """Record from file bytes, or None if missing/corrupt."""
    if not data or len(data) < 10 or data[8:9] != b"\n":
        return None
    try:
        want = int(data[:8], 16)
        text = data[9:]
        if crc32(text) != want:
            return None
        rec = json.loads(text)
    except Exception:
        return None
    return rec if isinstance(rec, dict) else None


def load(storage):
    """(record or None, status)."""
    main = storage.read(MAIN)
    rec = unpack(main)
    if rec is not None:
        return rec, "ok"
    bak = storage.read(BACKUP)
    rec = unpack(bak)
    if rec is not None:
        return rec, "backup"
    if main is None and bak is None:
        return None, "new"
    return None, "defaults"


def save(storage, record, rotate=True):
    """Write atomically; returns the number of bytes written.

    rotate=False replaces the main file but keeps the backup: a second save of the same
    checkpoint (same host step) must not push the previous checkpoint out of the backup.
    """
    data = pack(record)
    storage.write(TEMP, data)
    if unpack(storage.read(TEMP)) is None:  # read back before it replaces anything
        raise OSError(5)
    if rotate and unpack(storage.read(MAIN)) is not None:
        storage.rename(MAIN, BACKUP)  # the previous good copy becomes the fallback
    storage.rename(TEMP, MAIN)
    return len(data)


def load_step(storage, step):
    """The saved record whose host step is `step` (main file first, then the backup), or None."""
    for name in (MAIN, BACKUP):
        rec = unpack(storage.read(name))
        if rec is not None and rec.get("step") == step:
            return rec
    return None


def bump_boots(storage):
    """Boot counter (one small write per boot); a corrupt counter restarts at 1."""
    rec = unpack(storage.read(BOOTS))
    b = rec.get("boots") if rec else 0
    n = b + 1 if type(b) is int and 0 <= b < 999999999 else 1
    try:
        storage.write(BOOTS + ".tmp", pack({"boots": n}))
        storage.rename(BOOTS + ".tmp", BOOTS)
    except OSError:
        pass
    return n
