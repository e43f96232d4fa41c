"""Run the firmware cases and the heap probe under real MicroPython interpreters: the unix port
(64-bit) and the same port built for WASI (32-bit, a board's object sizes)."""

import os
import shutil
import subprocess
import sys

import pytest

from insitu.bench import firmware as bench
from insitu.emulator import wasm32

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FW_TESTS = os.path.join(HERE, "firmware")
PATH = os.path.join(ROOT, "firmware") + os.pathsep + FW_TESTS


def find_tool(name):
    p = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(p):
        return p
    p = shutil.which(name)
    if p is None:
        pytest.fail(f"{name} not found next to {sys.executable} or on PATH (make test installs it)")
    return p


def run_mp(script, heap=None, path=PATH):
    cmd = [find_tool("micropython")]
    if heap:
        cmd += ["-X", "heapsize=" + heap]
    env = dict(os.environ, MICROPYPATH=path)
    return subprocess.run(cmd + [script], capture_output=True, text=True, env=env, timeout=120,
                          cwd=ROOT)


def test_cases_pass_under_micropython():
    r = run_mp(os.path.join(FW_TESTS, "fw_runner.py"))
    lines = r.stdout.splitlines()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    passed = [x for x in lines if x.startswith("PASS ")]
    import importlib

    sys.path.insert(0, FW_TESTS)
    runner = importlib.import_module("fw_runner")
    want = {"PASS {}.{}".format(*c[:2]) for c in runner.all_cases()}
    assert set(passed) == want  # same cases, same results on both interpreters
    assert lines[-1] == f"{len(want)} passed, 0 failed"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Firmware + probe as .mpy, as deployed (source compiled on-board needs far more heap
    while compiling than the bytecode it produces); bench.probe writes config.json."""
    d = tmp_path_factory.mktemp("fw")
    bench.compile_tree(d)
    return d


@pytest.mark.parametrize("interp, heap", [("wasm32", "64K"), ("unix64", "104K")])
def test_control_step_does_not_allocate_and_heap_is_small(tree, interp, heap):
    # The node: 6 bonds, booted as a board boots it, code loaded from .mpy onto the
    # heap. On the 32-bit interpreter code + node + the setup's garbage fit 64 KB (~1 KB to
    # spare: docs/firmware.md); the 64-bit port's objects are about twice as big.
    row = bench.probe(tree, 6, heap, interp)
    print(f"heap probe {interp} at {heap}:", row)
    assert "error" not in row, row
    assert row["word_bits"] == (32 if interp == "wasm32" else 64)
    assert row["alloc_ticks"] == 0 and row["ticks"] == 305
    assert row["measure_completed"]
    assert row["node_bytes"] < 24 * 1024
    assert 0 < row["code_bytes"] and row["peak_bytes"] < row["heap_bytes"]


def gc_script(deep):
    """Collect at module level, refill the heap, then push 13 values (deep) or 1 on the module
    frame's value stack; print whether the refill is intact."""
    push = ", ".join(["x"] * (13 if deep else 1))
    return (
        "import gc\ngc.disable()\nx = [1]\ngc.collect()\n"
        "y = [bytes(64) for _ in range(300)]\n"
        f"z = [{push}]\n"
        "print(all(b == bytes(64) for b in y), z[0])\n"
    )


@pytest.mark.parametrize("deep", [False, True])
def test_wasm32_collects_safely_only_from_a_small_frame(tmp_path, deep):
    # Why heap_probe.py collects only at a shallow module level: a module frame of more than
    # 11 words lives on the heap, referenced from wasm locals this build's collector cannot
    # see; gc.collect() frees it, the refill reuses it and the next pushes corrupt the heap.
    # If this starts passing for deep, the build scans its roots and the caveat can go.
    (tmp_path / "gcframe.py").write_text(gc_script(deep))
    r = wasm32.run(["-X", "heapsize=64K", str(tmp_path / "gcframe.py")])
    right = r.returncode == 0 and r.stdout == "True [1]\n"
    assert right != deep, r
    if deep:
        assert r.returncode == wasm32.TRAPPED or r.stdout.startswith("False"), r
