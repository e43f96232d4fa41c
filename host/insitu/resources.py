"""Where the files insitu ships live. The one module that knows; everything else asks it.

Shipped files: the firmware tree a board gets (``main.py``, ``manifest.py`` and the
``insitu_node`` package as files to copy), the bundled network files, the board pin maps and
the Iris data. They are found with :mod:`importlib.resources` from the ``insitu`` package, in
one of two layouts:

- **installed from a wheel**: setup.py copies the repo's ``firmware/``, ``hardware/networks/``
  and ``hardware/boards/`` into the package as ``insitu/_kit/firmware``, ``insitu/_kit/networks``
  and ``insitu/_kit/boards``;
- **a source checkout** (an editable install, or ``PYTHONPATH=host:firmware``): no ``_kit``
  inside the package; the repo's own ``firmware/`` and ``hardware/`` beside ``host/`` are the
  source of truth (labs and docs point there), so edits there take effect without a reinstall.

Every lookup returns a real directory or file (:class:`pathlib.Path`): MicroPython processes
need one on MICROPYPATH, and mpremote copies files from disk. A zipped install is refused.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = [
    "Kit",
    "ResourceError",
    "boards_dir",
    "editable",
    "firmware_dir",
    "iris_csv",
    "kit",
    "network_names",
    "network_path",
    "networks_dir",
    "source_checkout",
]

KIT = "_kit"  # the package directory a wheel carries the shipped trees in (see setup.py)


class ResourceError(RuntimeError):
    """The shipped files cannot be found (a broken install); one line naming what is missing."""


@dataclass(frozen=True)
class Kit:
    """The shipped trees of this installation."""

    firmware: Path  # main.py, manifest.py, insitu_node/
    networks: Path  # <name>.toml
    boards: Path  # <family>.toml pin maps
    installed: bool  # True: from a wheel (insitu/_kit); False: a source checkout


def _package_dir() -> Path:
    pkg = resources.files("insitu")
    if not isinstance(pkg, Path):  # a zip import: nothing on disk to copy or put on a path
        raise ResourceError(f"insitu is imported from {pkg}, not a directory; install it unzipped")
    return pkg


@functools.cache
def kit() -> Kit:
    """The shipped trees: the wheel's ``insitu/_kit`` if present, else the source checkout's."""
    pkg = _package_dir()
    inside = pkg / KIT
    if inside.is_dir():
        found = Kit(inside / "firmware", inside / "networks", inside / "boards", installed=True)
    else:
        root = source_checkout()
        if root is None:
            raise ResourceError(
                f"{pkg} has no {KIT}/ (the wheel's firmware and hardware files) and is not in a "
                "source checkout; reinstall insitu from a wheel built by this version"
            )
        hw = root / "hardware"
        found = Kit(root / "firmware", hw / "networks", hw / "boards", installed=False)
    for what, d in (
        ("firmware", found.firmware),
        ("networks", found.networks),
        ("pin maps", found.boards),
    ):
        if not d.is_dir():
            raise ResourceError(f"the {what} directory {d} is missing from this installation")
    return found


def source_checkout() -> Path | None:
    """The repo root when insitu runs from a source checkout (``host/insitu`` beside
    ``firmware/`` and ``hardware/``), else None. Only checkout-only tools (the firmware heap
    probe in tests/firmware) need it; shipped files come from :func:`kit`."""
    root = _package_dir().parent.parent
    if (root / "firmware" / "main.py").is_file() and (root / "hardware").is_dir():
        return root
    return None


def firmware_dir() -> Path:
    """The firmware tree a board gets: ``main.py`` and the ``insitu_node`` package."""
    return kit().firmware


def networks_dir() -> Path:
    return kit().networks


def boards_dir() -> Path:
    """Board pin maps, ``<family>.toml``."""
    return kit().boards


def network_names() -> list[str]:
    """Names of the bundled networks (file stems), sorted."""
    return sorted(p.stem for p in networks_dir().glob("*.toml"))


def network_path(name: str) -> Path | None:
    """The bundled network called ``name`` (``li-mao-2024`` or ``li-mao-2024.toml``), or None.
    Only bare names: anything with a directory part is a path, not a name."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    stem = name[: -len(".toml")] if name.endswith(".toml") else name
    path = networks_dir() / f"{stem}.toml"
    return path if path.is_file() else None


def editable(source: str) -> str:
    """How to point a lab at a network file it should edit (to record unique ids): a bundled
    network inside an installed wheel is copied first, not edited in place."""
    k = kit()
    if k.installed and Path(source).parent == k.networks:
        return f"a copy of {source}"
    return source


def iris_csv() -> Path:
    """Fisher's 150 Iris rows (``insitu/data/iris.csv``, package data in both layouts)."""
    return _package_dir() / "data" / "iris.csv"
