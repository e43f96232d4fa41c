"""Flash node boards with the real ``mpremote``: firmware + the board's generated config.json.

Per board, three mpremote invocations (subprocesses; mpremote is found next to the running
Python first, then on PATH):

1. **probe** — ``mpremote connect PORT exec <script>``: mpremote interrupts whatever runs
   (Ctrl-C), enters the raw REPL (with its usual soft reset, so ``main.py`` does not start
   again) and the script prints the board's unique id, the sha256 of every file the deploy
   would write (``hashlib`` on the board, as ``mpremote fs sha256sum`` does, but all files
   and the directories in one round trip), and the ``wdt`` section of its current config.json.
   Nothing is written. A board whose unique id is not the one the network file (or ``--map``)
   records for this node is refused here.
2. **copy** — one ``mpremote connect PORT fs mkdir :DIR + ... + fs cp -f SRC :DEST + ...
   + reset`` chain with only the directories that are missing and the files whose sha256
   differs (unchanged files are skipped, and reported as such), then a hard reset
   (``machine.reset()``) so the board boots the new firmware.
3. **verify** — the host opens the port with pyserial and broadcasts ``identify`` until the
   board answers (boot timeout), then compares node id, firmware version, bonds and config
   hash with what the network file generates.

Watchdog rule (DESIGN.md §5): a started hardware watchdog cannot be stopped, and interrupting
``main.py`` stops feeding it, so a board whose running config enables ``wdt`` could be reset
in the middle of a copy. The firmware starts its watchdog only after ``wdt.grace_ms`` of
uptime; so when the probe sees ``wdt.enable``, flash first resets the board (``machine.reset()``
typed at its REPL, which stops the watchdog), and copies right after the reboot, inside the
grace period. The probe itself must finish within the watchdog's timeout (it takes ~0.2 s).

Config generation (:func:`deploy_configs`) is the same as ``insitu board config`` for real
families (nominal bench calibration + the family's pin map) and the same as the emulator's
labs for ``emu`` boards (the emulated profile's calibration), so a session that connects
afterwards computes the same config hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from insitu.deploy.discovery import (
    Identity,
    describe,
    identify_port,
    identity_problem,
)
from insitu.deploy.nodeconfig import config_text, expected_hash, node_config
from insitu.network.schema import Board, Network
from insitu.resources import firmware_dir

R = TypeVar("R")
FIRMWARE_DIR = firmware_dir()  # insitu.resources: the wheel's copy, or the checkout's firmware/
CONFIG_FILE = "config.json"
PROBE_MARK = "INSITU-PROBE "
MPREMOTE_TIMEOUT = 120.0  # seconds for one mpremote invocation
PROBE_TIMEOUT = 15.0  # seconds for the probe (a small exec)
PROBE_ATTEMPTS = 3
BOOT_TIMEOUT = 20.0  # seconds from reset until the board must answer identify

__all__ = [
    "BOOT_TIMEOUT",
    "FIRMWARE_DIR",
    "FlashError",
    "CheckResult",
    "FlashResult",
    "Mpremote",
    "Probe",
    "check_board",
    "deploy_configs",
    "find_mpremote",
    "firmware_files",
    "firmware_version",
    "flash_board",
    "payload",
    "probe_board",
    "run_many",
    "wait_identity",
]


class FlashError(RuntimeError):
    """Flashing was refused or failed; one line. ``written`` says whether the board changed."""

    def __init__(self, message: str, written: bool = False) -> None:
        super().__init__(message)
        self.written = written


# ------------------------------------------------------------------------------ what to copy


def firmware_files(root: Path = FIRMWARE_DIR) -> list[str]:
    """Files a board carries, as POSIX paths relative to the firmware root: ``main.py`` and
    every ``.py`` of the ``insitu_node`` package (``tools/`` and ``manifest.py`` stay home)."""
    root = Path(root)
    files = [root / "main.py"]
    files += sorted((root / "insitu_node").rglob("*.py"))
    missing = [p for p in files if not p.is_file()]
    if missing or not (root / "insitu_node").is_dir():
        raise FlashError(f"{root} is not a firmware tree (needs main.py and insitu_node/)")
    return [p.relative_to(root).as_posix() for p in files if "__pycache__" not in p.parts]


def firmware_version(root: Path = FIRMWARE_DIR) -> str:
    """``VERSION`` of a firmware tree, read from ``insitu_node/__init__.py`` (not imported)."""
    text = (Path(root) / "insitu_node" / "__init__.py").read_text()
    m = re.search(r"^VERSION\s*=\s*[\"']([^\"']+)[\"']", text, re.M)
    if not m:
        raise FlashError(f'{root}/insitu_node/__init__.py has no VERSION = "..."')
    return m.group(1)


def payload(config: Mapping[str, Any], root: Path = FIRMWARE_DIR) -> dict[str, bytes]:
    """Destination path on the board → content, firmware files then config.json."""
    root = Path(root)
    out = {rel: (root / rel).read_bytes() for rel in firmware_files(root)}
    out[CONFIG_FILE] = config_text(dict(config)).encode()
    return out


def deploy_configs(
    network: Network,
    boards: Sequence[Board] | None = None,
    family: str | None = None,
    pins: str | None = None,
    profile: str = "ideal",
    element: str = "servo",
) -> dict[int, dict]:
    """The config.json each board gets, board id → dict (validated by the firmware).

    ``family`` overrides the network file's per-board family. ``emu`` boards (emulated,
    MicroPython processes) get the calibration of the emulator's ``profile``, exactly as a
    ``MicroPythonLab`` generates them; real families get the nominal bench calibration and the
    pins of ``pins`` (default: hardware/boards/<family>.toml), as ``insitu board config``.
    """
    boards = list(network.boards if boards is None else boards)
    out: dict[int, dict] = {}
    families = {family or bd.family for bd in boards}
    cal_emu = None
    if "emu" in families:
        from insitu.emulator.inprocess import firmware_profile, world_calibration
        from insitu.emulator.world import World

        cal_emu = world_calibration(World(network, firmware_profile(profile)))
    pinmaps: dict[str, Any] = {}
    for bd in boards:
        fam = family or bd.family
        if fam == "emu":
            assert cal_emu is not None
            out[bd.id] = node_config(network, bd, cal_emu, family="emu", timeout_ms=0)
            continue
        from insitu.hardware.pinmap import (
            FAMILY_CHIP,
            apply_pins,
            bench_calibration,
            default_pinmap_path,
            load_pinmap,
        )

        if fam not in FAMILY_CHIP:
            raise FlashError(f"board {bd.id}: unknown family {fam!r} (pico, pico2, esp32, emu)")
        if fam not in pinmaps:
            path = pins or str(default_pinmap_path(fam))
            pm = load_pinmap(path)
            if pm.family != fam:
                raise FlashError(
                    f"--pins {path}: a {pm.family} pin map, but board {bd.id} is a {fam}; "
                    "pass --family or another --pins"
                )
            pinmaps[fam] = pm
        pm = pinmaps[fam]
        cfg = node_config(network, bd, bench_calibration(), family=pm.chip.firmware_family)
        out[bd.id] = apply_pins(cfg, pm, element=element)
    return out


# ------------------------------------------------------------------------------ mpremote


def find_mpremote() -> str:
    """``mpremote`` next to the running Python (the project's .venv) first, then on PATH."""
    here = Path(sys.executable).parent / "mpremote"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("mpremote")
    if found:
        return found
    raise FlashError(
        f"mpremote not found next to {sys.executable} nor on PATH (pip install mpremote)"
    )


class Mpremote:
    """Runs the real ``mpremote`` command against one port per invocation."""

    def __init__(self, exe: str | None = None, timeout: float = MPREMOTE_TIMEOUT) -> None:
        self.exe = exe or find_mpremote()
        self.timeout = timeout

    def run(self, port: str, args: Sequence[str], what: str, timeout: float | None = None) -> str:
        """``mpremote connect PORT ARGS...``; stdout, or FlashError with mpremote's last line."""
        cmd = [self.exe, "connect", port, *args]
        limit = self.timeout if timeout is None else timeout
        try:
            r = subprocess.run(
                cmd, capture_output=True, text=True, timeout=limit, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise FlashError(f"{port}: mpremote {what} timed out after {limit:.0f} s") from None
        if r.returncode != 0:
            lines = [ln.strip() for ln in (r.stderr + r.stdout).splitlines() if ln.strip()]
            last = lines[-1] if lines else f"exit status {r.returncode}"
            raise FlashError(f"{port}: mpremote {what} failed: {last}")
        return r.stdout


_PROBE = """\
import os, sys, json
from binascii import hexlify
try:
    import hashlib
    _s = hashlib.sha256
except (ImportError, AttributeError):
    _s = None
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    if _s is None:
        f.close()
        return '?'
    s = _s()
    b = bytearray(512)
    m = memoryview(b)
    while True:
        n = f.readinto(b)
        if not n:
            break
        s.update(m[:n])
    f.close()
    return hexlify(s.digest()).decode()
def _d(p):
    try:
        return (os.stat(p)[0] & 0x4000) != 0
    except OSError:
        return False
try:
    import machine
    _u = hexlify(machine.unique_id()).decode()
except Exception:
    _u = ''
_w = None
try:
    with open('config.json') as f:
        _w = json.load(f).get('wdt')
except Exception:
    pass
print(MARK + json.dumps({'uid': _u, 'platform': sys.platform,
    'files': dict((p, _h(p)) for p in FILES), 'dirs': dict((p, _d(p)) for p in DIRS),
    'wdt': _w}))
"""


@dataclass(frozen=True)
class Probe:
    """What the probe found on a board (nothing written)."""

    uid: str
    platform: str
    files: dict[str, str | None]  # dest → sha256 hex, None = missing, "?" = cannot hash
    dirs: dict[str, bool]
    wdt: dict[str, Any] | None

    @property
    def watchdog(self) -> bool:
        return bool(self.wdt and self.wdt.get("enable"))


def _dirs_of(dests: Sequence[str]) -> list[str]:
    """Every parent directory of dests, parents before children."""
    out: set[str] = set()
    for d in dests:
        parts = d.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return sorted(out, key=lambda p: (p.count("/"), p))


def probe_retrying(
    mp: Mpremote, port: str, dests: Sequence[str] = (), reset: bool = False
) -> tuple[Probe, int]:
    """``probe_board`` with up to PROBE_ATTEMPTS tries; (probe, tries that failed).

    A running watchdog may reset the board under the probe (it then boots into its grace
    period, where another probe is safe); a board still booting, or a host busy enough to
    starve mpremote past its limit, answers the next time.
    """
    for attempt in range(PROBE_ATTEMPTS):
        try:
            return probe_board(mp, port, dests, reset), attempt
        except FlashError:
            if attempt == PROBE_ATTEMPTS - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def probe_board(mp: Mpremote, port: str, dests: Sequence[str] = (), reset: bool = False) -> Probe:
    """Run the probe script on the board at ``port`` (interrupts main.py; writes nothing).
    ``reset``: hard-reset the board right after, in the same mpremote run, so it boots its
    app again (``flash --check``; flash itself resets after the copy)."""
    script = (
        f"MARK = {PROBE_MARK!r}\nFILES = {list(dests)!r}\nDIRS = {_dirs_of(dests)!r}\n" + _PROBE
    )
    args = ["exec", script, "+", "reset"] if reset else ["exec", script]
    # short limit: a board reset under mpremote (a running watchdog) leaves it waiting forever
    out = mp.run(port, args, "probe", timeout=PROBE_TIMEOUT)
    for line in out.splitlines():
        if line.startswith(PROBE_MARK):
            d = json.loads(line[len(PROBE_MARK) :])
            return Probe(
                uid=str(d.get("uid", "")).lower(),
                platform=str(d.get("platform", "?")),
                files=dict(d.get("files", {})),
                dirs=dict(d.get("dirs", {})),
                wdt=d.get("wdt") if isinstance(d.get("wdt"), dict) else None,
            )
    tail = out.strip().splitlines()[-1:] or ["no output"]
    raise FlashError(f"{port}: the board did not run the probe: {tail[0]}")


def repl_reset(port: str) -> None:
    """Hard-reset a board from its friendly REPL without waiting for any prompt.

    Not with mpremote: its raw-REPL handshake hangs when the watchdog resets the board in the
    middle of it. Ctrl-C (interrupt), Ctrl-B (friendly REPL), then ``machine.reset()`` typed
    as a line: whether this or the watchdog resets the board first, it reboots into main.py
    and its grace period.
    """
    import serial

    try:
        with serial.serial_for_url(port, baudrate=115200, timeout=0) as s:
            s.write(b"\r\x03\x03\x02")
            time.sleep(0.05)
            s.write(b"import machine; machine.reset()\r")
            s.flush()
    except (serial.SerialException, OSError, ValueError) as exc:
        raise FlashError(f"{port}: cannot reset the board: {exc}") from None
    time.sleep(0.3)


def port_is_device(port: str) -> bool:
    return "://" not in port


def wait_port(port: str, timeout: float) -> None:
    """After a reset a USB board's device node disappears and comes back: wait for it."""
    if not port_is_device(port):
        return
    deadline = time.monotonic() + timeout
    while not os.path.exists(port):
        if time.monotonic() > deadline:
            raise FlashError(
                f"{port} did not come back within {timeout:.0f} s of the reset", written=True
            )
        time.sleep(0.05)


def wait_identity(port: str, address: str, timeout: float = BOOT_TIMEOUT) -> Identity:
    """Broadcast identify on ``port`` until the board at ``address`` answers (after a boot)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FlashError(
                f"{port}: the board did not answer identify within {timeout:.0f} s of the "
                f"reset ({last})",
                written=True,
            )
        if port_is_device(port) and not os.path.exists(port):
            time.sleep(0.05)
            continue
        rep = identify_port(port, timeout=min(0.5, left), attempts=1)
        if rep.error:
            last = rep.error
            time.sleep(0.1)
            continue
        for ident in rep.identities:
            if ident.address == address:
                return ident
        if rep.identities:
            return rep.identities[0]  # the caller reports the wrong id


# ------------------------------------------------------------------------------ one board


@dataclass
class FlashResult:
    """What flashing one board did."""

    board: Board
    port: str
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_copied: int = 0
    seconds: float = 0.0
    uid: str = ""
    identity: Identity | None = None
    problem: str | None = None  # the board does not identify as expected after the flash
    notes: list[str] = field(default_factory=list)
    mpremote_calls: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None and self.identity is not None

    def line(self) -> str:
        head = f"{describe(self.board)} on {self.port}"
        what = (
            f"copied {len(self.copied)} file(s) ({self.bytes_copied / 1024:.1f} KiB), "
            f"skipped {len(self.skipped)} unchanged"
        )
        notes = "".join(f"; {n}" for n in self.notes)
        if self.ok:
            i = self.identity
            assert i is not None
            res = f"ok: node {i.address}, firmware {i.firmware}, config {i.config_hash}"
        else:
            res = f"FAILED: {self.problem}"
        return f"{head}: {what} in {self.seconds:.1f} s{notes}; {res}"


def flash_board(
    port: str,
    network: Network,
    board: Board,
    config: Mapping[str, Any],
    *,
    root: Path = FIRMWARE_DIR,
    expect_uid: str | None = None,
    mpremote: Mpremote | None = None,
    boot_timeout: float = BOOT_TIMEOUT,
    force: bool = False,
) -> FlashResult:
    """Copy firmware + config to the board at ``port`` (changed files only), reset, verify.

    Raises FlashError before anything is written when the board cannot be reached or its
    unique id is not ``expect_uid``; afterwards a board that does not identify as expected is
    reported in the result (``problem``), not raised. ``force`` copies every file.
    """
    from insitu.deploy.nodeconfig import node_address

    t0 = time.monotonic()
    mp = mpremote or Mpremote()
    files = payload(config, root)
    version = firmware_version(root)
    res = FlashResult(board, port)

    probe, extra = probe_retrying(mp, port, list(files))
    if extra:
        res.mpremote_calls += extra
        res.notes.append("probe repeated")
    res.mpremote_calls += 1
    res.uid = probe.uid
    if expect_uid is not None and probe.uid != expect_uid.lower():
        raise FlashError(
            f"{port} has the board with unique id {probe.uid or '?'}, but {describe(board)} "
            f"is {expect_uid.lower()}; nothing written"
        )
    if probe.watchdog:
        # the old config enables the watchdog: reset first so it is not running while we copy
        grace = (probe.wdt or {}).get("grace_ms", "?")
        repl_reset(port)
        wait_port(port, boot_timeout)
        res.notes.append(f"watchdog enabled (grace {grace} ms): reset before copying")

    for dest, data in files.items():
        have = probe.files.get(dest)
        if not force and have is not None and have == hashlib.sha256(data).hexdigest():
            res.skipped.append(dest)
        else:
            res.copied.append(dest)
            res.bytes_copied += len(data)
    mkdirs = [d for d in _dirs_of(res.copied) if not probe.dirs.get(d)]

    args: list[str] = []
    with tempfile.TemporaryDirectory(prefix="insitu-flash-") as tmp:
        for d in mkdirs:
            args += ["fs", "mkdir", ":" + d, "+"]
        for dest in res.copied:
            if dest == CONFIG_FILE:
                src = Path(tmp) / CONFIG_FILE
                src.write_bytes(files[dest])
            else:
                src = Path(root) / dest
            args += ["fs", "cp", "-f", str(src), ":" + dest, "+"]
        args += ["reset"]
        try:
            mp.run(port, args, "copy" if res.copied else "reset")
            res.mpremote_calls += 1
        except FlashError as exc:
            exc.written = bool(res.copied)
            raise
    wait_port(port, boot_timeout)
    ident = wait_identity(port, node_address(board), boot_timeout)
    res.identity = ident
    res.problem = identity_problem(ident, network, board, expected_hash(dict(config)), version)
    if res.problem is None and probe.uid and ident.uid != probe.uid:
        res.problem = f"reports unique id {ident.uid}, the REPL said {probe.uid}"
    res.seconds = time.monotonic() - t0
    return res


def run_many(
    jobs: Sequence[tuple[str, Board, str | None]],
    one: Callable[[str, Board, str | None], R],
    parallel: int = 8,
    on_done: Callable[[R | FlashError, int, int], None] | None = None,
) -> list[R | FlashError]:
    """``one(port, board, expected uid)`` for every job, ``parallel`` at a time (each board has
    its own port, so they do not wait on each other). Results in job order, a FlashError in
    place of a board it was raised for; ``on_done(result, k, n)`` as each finishes."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    out: list[R | FlashError | None] = [None] * len(jobs)
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(jobs) or 1))) as ex:
        futs = {ex.submit(one, port, bd, uid): i for i, (port, bd, uid) in enumerate(jobs)}
        for fut in as_completed(futs):
            i = futs[fut]
            try:
                r: R | FlashError = fut.result()
            except FlashError as exc:
                r = exc
            out[i] = r
            done += 1
            if on_done is not None:
                on_done(r, done, len(jobs))
    return [r for r in out if r is not None]


def flash_many(
    jobs: Sequence[tuple[str, Board, str | None]],
    network: Network,
    configs: Mapping[int, dict],
    *,
    root: Path = FIRMWARE_DIR,
    parallel: int = 8,
    force: bool = False,
    boot_timeout: float = BOOT_TIMEOUT,
    on_done: Callable[[FlashResult | FlashError, int, int], None] | None = None,
) -> list[FlashResult | FlashError]:
    """Flash (port, board, expected uid) jobs, ``parallel`` at a time (:func:`run_many`)."""
    mp = Mpremote()

    def one(port: str, bd: Board, uid: str | None) -> FlashResult:
        return flash_board(
            port,
            network,
            bd,
            configs[bd.id],
            root=root,
            expect_uid=uid,
            mpremote=mp,
            boot_timeout=boot_timeout,
            force=force,
        )

    return run_many(jobs, one, parallel, on_done)


# ------------------------------------------------------------------------------ --check


@dataclass
class CheckResult:
    """How a board differs from what flashing it would give it (nothing written)."""

    board: Board
    port: str
    config_hash: str  # of the config.json flash would write
    running: Identity | None = None  # the board's answer to identify before the check
    uid: str = ""
    same: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # on the board, other content
    missing: list[str] = field(default_factory=list)
    problem: str | None = None  # how the running node differs (identify), or no answer
    seconds: float = 0.0

    @property
    def config_differs(self) -> bool:
        """The config the running node reports is not the one flash would write."""
        return self.running is not None and self.running.config_hash != self.config_hash

    @property
    def identical(self) -> bool:
        return not (self.changed or self.missing or self.problem or self.config_differs)

    def differences(self) -> list[str]:
        """One phrase per kind of difference (file lists shortened; --json has them all)."""

        def names(files: list[str]) -> str:
            more = f", ... ({len(files) - 3} more)" if len(files) > 4 else ""
            return ", ".join(files[:3] if more else files) + more

        out = []
        if self.changed:
            out.append(f"{len(self.changed)} file(s) differ: {names(self.changed)}")
        if self.missing:
            out.append(f"{len(self.missing)} missing: {names(self.missing)}")
        if self.running is not None and self.config_differs:
            have = self.running.config_hash
            out.append(f"config {have} on the board, {self.config_hash} would be flashed")
        if self.problem:
            out.append(self.problem)
        return out

    def line(self) -> str:
        head = f"{describe(self.board)} on {self.port}"
        if self.identical:
            return (
                f"{head}: identical: {len(self.same)} file(s) by sha256, config {self.config_hash}"
            )
        return f"{head}: differs: " + "; ".join(self.differences())


def check_board(
    port: str,
    network: Network,
    board: Board,
    config: Mapping[str, Any],
    *,
    running: Identity | None,
    root: Path = FIRMWARE_DIR,
    expect_uid: str | None = None,
    mpremote: Mpremote | None = None,
    boot_timeout: float = BOOT_TIMEOUT,
) -> CheckResult:
    """Compare the board at ``port`` with what :func:`flash_board` would write: every file by
    sha256 (the probe), and the running node's identify answer ``running`` (config hash,
    firmware, bonds, config error). Writes nothing; the probe interrupts ``main.py``, so the
    board is reset right after it and, if it answered identify before, awaited until it does
    again. Raises FlashError when the board cannot be probed or is another board."""
    from insitu.deploy.nodeconfig import node_address

    t0 = time.monotonic()
    mp = mpremote or Mpremote()
    files = payload(config, root)
    version = firmware_version(root)
    res = CheckResult(board, port, expected_hash(dict(config)), running)
    probe, _ = probe_retrying(mp, port, list(files), reset=True)
    res.uid = probe.uid
    if expect_uid is not None and probe.uid != expect_uid.lower():
        raise FlashError(
            f"{port} has the board with unique id {probe.uid or '?'}, but {describe(board)} "
            f"is {expect_uid.lower()}"
        )
    for dest, data in files.items():
        have = probe.files.get(dest)
        if have is None:
            res.missing.append(dest)
        elif have == hashlib.sha256(data).hexdigest():
            res.same.append(dest)
        else:  # including "?", a board without hashlib: not known to be the same
            res.changed.append(dest)
    if running is None:
        res.problem = "no answer to identify (no insitu firmware running there)"
    else:
        # everything but the config hash, which config_differs reports with both hashes
        res.problem = identity_problem(running, network, board, running.config_hash, version)
        # back in its app, as before the check (the address it had, configured or not); a
        # board that ran code it no longer has on flash may not come back: that differs too
        try:
            wait_port(port, boot_timeout)
            wait_identity(port, running.address or node_address(board), boot_timeout)
        except FlashError as exc:
            gone = str(exc).removeprefix(f"{port}: ")
            res.problem = "; ".join(p for p in (res.problem, gone) if p)
    res.seconds = time.monotonic() - t0
    return res
