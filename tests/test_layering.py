"""Layering: only the board-opening module chooses and opens emulated boards (issue 15).

Below the command line, ``insitu.emulator`` is imported by the emulator package itself, by
``insitu.rig.lab`` (the one place that opens boards: ports, in-process, MicroPython
processes) and by the benchmarks; everything else takes a rig it is given. The check walks
the AST of every module, so a function-local import counts as much as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

HOST = Path(__file__).resolve().parents[1] / "host" / "insitu"
EMULATOR = "insitu.emulator"
# package paths (relative to host/insitu) allowed to import the emulator
ALLOWED = ("emulator", "rig/lab.py", "cli", "bench")


def _module_name(path: Path) -> str:
    parts = ("insitu",) + path.relative_to(HOST).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(source: str, module: str, package: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every import in ``source`` (module ``module``; ``package``: an
    __init__), anywhere in it, relative ones resolved; ``from a import b`` gives a and a.b."""
    here = module.split(".") if package else module.split(".")[:-1]
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from .x import y, from .. import y
                up = here[: len(here) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def _allowed(path: Path) -> bool:
    rel = path.relative_to(HOST).as_posix()
    return any(rel == a or rel.startswith(a + "/") for a in ALLOWED)


def test_only_the_board_opening_module_imports_the_emulator() -> None:
    offenders = []
    for path in sorted(HOST.rglob("*.py")):
        if _allowed(path):
            continue
        found = _imports(path.read_text(), _module_name(path), path.name == "__init__.py")
        for line, mod in found:
            if mod == EMULATOR or mod.startswith(EMULATOR + "."):
                offenders.append(f"{path.relative_to(HOST.parent)}:{line} imports {mod}")
    assert not offenders, "\n".join(offenders)


def test_the_check_sees_function_local_and_relative_imports() -> None:
    src = (
        "def f():\n"
        "    from insitu.emulator.world import World\n"
        "    from .. import emulator\n"
        "class C:\n"
        "    def g(self):\n"
        "        import insitu.emulator.inprocess\n"
    )
    mods = [m for _, m in _imports(src, "insitu.store.probe")]
    assert "insitu.emulator.world" in mods
    assert "insitu.emulator" in mods  # from .. import emulator, seen from insitu.store
    assert "insitu.emulator.inprocess" in mods


def test_trainers_never_open_boards() -> None:
    """Trainers take the rig they are given: none imports the board-opening module."""
    for path in sorted((HOST / "trainers").glob("*.py")):
        mods = {m for _, m in _imports(path.read_text(), _module_name(path))}
        assert not {m for m in mods if m.startswith("insitu.rig.lab")}, path.name
