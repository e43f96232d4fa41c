"""Benchmarks: commands that measure, print JSON and write a plot (DESIGN.md section 6).

Each benchmark is a module registered in ``BENCHMARKS`` (name -> module path) and run by
``insitu bench NAME [--quick] [--json] [--out DIR]``. A benchmark module defines:

- ``HELP``: one line;
- ``add_arguments(parser)``: its own flags (the CLI adds --quick, --json and --out);
- ``run(args) -> dict``: the measurement; a JSON-able dict that includes ``machine_info()``;
- ``summary(result) -> str``: a short readable table (printed without --json);
- ``plot(result, path) -> Path`` and ``markdown(result) -> str``: with --out the CLI writes
  ``NAME.png`` and ``NAME.md`` beside ``NAME.json``.

Modules must be cheap to import (the CLI imports them to build its parser): import matplotlib,
the emulator or anything heavy inside functions. Tests never assert wall-clock times; they run a
benchmark on tiny sizes and check its keys.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import sys
from collections.abc import Iterator
from typing import Any

# name -> module; add a line here for each new benchmark (gradient, paper, methods, host,
# firmware).
BENCHMARKS: dict[str, str] = {
    "solver": "insitu.bench.solver",
    "gradient": "insitu.bench.gradient",
    "paper": "insitu.bench.paper",
    "methods": "insitu.bench.methods",
    "host": "insitu.bench.host",
    "firmware": "insitu.bench.firmware",
    "elements": "insitu.bench.elements",
    "calibration": "insitu.bench.calibration",
    "friction": "insitu.bench.friction",
    "superposed": "insitu.bench.superposed",
    "rigtime": "insitu.bench.rigtime",
    "settle": "insitu.bench.settle",
}


@contextlib.contextmanager
def figure(path: Any, size: tuple[float, float] = (6.5, 3.8)) -> Iterator[Any]:
    """One matplotlib axes (Agg), saved to ``path`` and closed when the block ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    try:
        yield ax
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)


def table(header: list[str], rows: list[list[str]], markdown: bool = False,
          right: tuple[int, ...] = ()) -> str:
    """Cells (strings) as a Markdown table or as aligned text columns: one source for a
    benchmark's printed summary and its NAME.md. ``right``: right-aligned column indexes."""
    if markdown:
        sep = "".join("---:|" if i in right else "---|" for i in range(len(header)))
        lines = [header, *rows]
        return "\n".join(["| " + " | ".join(lines[0]) + " |", "|" + sep,
                          *("| " + " | ".join(r) + " |" for r in lines[1:])])  # fmt: skip
    widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]

    def line(r: list[str]) -> str:
        cells = enumerate(zip(r, widths, strict=True))
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in cells).rstrip()

    return "\n".join(line(r) for r in [header, *rows])


def cpu_model() -> str:
    """The CPU's model name, best effort (Linux /proc/cpuinfo, macOS sysctl, platform)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        import subprocess

        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def memory_bytes() -> int | None:
    """Total physical memory, if the platform says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory_bytes() -> int | None:
    """Memory available for new allocations (Linux MemAvailable), if known."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


# 1 + 2**-40 is 1 in single precision (24-bit significand) and not in double (53-bit)
_FLOAT_PROBE = "import sys; print(sys.implementation.version[:3], 1.0 + 2.0 ** -40 != 1.0)"


@functools.lru_cache(maxsize=1)
def firmware_floats() -> dict[str, Any]:
    """The float width the firmware computed with where a benchmark can run it: in-process
    nodes run it on CPython (64-bit), MicroPython processes on the unix port found here (probed:
    64-bit, or 32-bit on a single-precision build), while rp2/esp32 boards have 32-bit floats
    (DESIGN.md, MicroPython differences)."""
    import subprocess

    mp: dict[str, Any] | None = None
    try:
        from insitu.emulator.mpboard import find_micropython

        exe = find_micropython()
        out = subprocess.run(
            [exe, "-c", _FLOAT_PROBE], capture_output=True, text=True, timeout=10, check=True
        ).stdout.split(")")
        mp = {
            "path": exe,
            "version": ".".join(x.strip() for x in out[0].strip("( ").split(",")),
            "float_bits": 64 if out[1].strip() == "True" else 32,
        }
    except (FileNotFoundError, OSError, subprocess.SubprocessError, IndexError) as exc:
        mp = {"error": f"no MicroPython probed: {exc}"}
    return {"in_process_bits": 64, "micropython": mp, "boards_rp2_esp32_bits": 32}


def float_line(machine: dict[str, Any]) -> str:
    """One line for a benchmark's text output: the firmware's float width where it ran."""
    ff = machine.get("firmware_float")
    if not ff:
        return ""
    mp = ff.get("micropython") or {}
    where = (f"MicroPython {mp['version']} unix port {mp['float_bits']}-bit"
             if "float_bits" in mp else "MicroPython not found")  # fmt: skip
    return (f"firmware floats: in-process nodes {ff['in_process_bits']}-bit (CPython); {where}; "
            f"rp2/esp32 boards {ff['boards_rp2_esp32_bits']}-bit")  # fmt: skip


def machine_info() -> dict[str, Any]:
    """What a benchmark ran on: CPU, cores, memory, Python and library versions, and the float
    width of the firmware on each kind of board (``firmware_floats``)."""
    import numpy
    import scipy

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        usable = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_bytes": memory_bytes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "blas_threads": blas_thread_counts(),
        "firmware_float": firmware_floats(),
    }


def _openblas_libs() -> list[tuple[ctypes.CDLL, str, str]]:
    """(library, get symbol, set symbol) for each OpenBLAS numpy/scipy loaded (Linux only)."""
    found = []
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({ln.split()[-1] for ln in fh if "openblas" in ln.lower() and "/" in ln})
    except OSError:
        return found
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("", "64_"):
            for prefix in ("openblas", "scipy_openblas"):
                get, set_ = f"{prefix}_get_num_threads{suffix}", f"{prefix}_set_num_threads{suffix}"
                if hasattr(lib, get) and hasattr(lib, set_):
                    found.append((lib, get, set_))
    return found


def blas_thread_counts() -> list[int]:
    """Threads of every OpenBLAS loaded by numpy/scipy (empty if unknown)."""
    import numpy  # noqa: F401  (load the libraries)
    import scipy.linalg  # noqa: F401

    return [int(getattr(lib, get)()) for lib, get, _ in _openblas_libs()]


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[bool]:
    """Run the block with n BLAS threads where that can be set; yields whether it was."""
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401

    libs = _openblas_libs()
    before = [int(getattr(lib, get)()) for lib, get, _ in libs]
    for lib, _, set_ in libs:
        getattr(lib, set_)(ctypes.c_int(n))
    try:
        yield bool(libs)
    finally:
        for (lib, _, set_), b in zip(libs, before, strict=True):
            getattr(lib, set_)(ctypes.c_int(b))
