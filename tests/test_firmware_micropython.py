"""Run the firmware cases and the heap probe under a real MicroPython interpreter."""

import json
import os
import shutil
import subprocess
import sys

import pytest

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


def compile_tree(dst):
    """Firmware + test fixtures as .mpy, as deployed (source compiled on-board needs far more
    heap while compiling than the bytecode it produces)."""
    mpy_cross = find_tool("mpy-cross")
    srcs = [(os.path.join(ROOT, "firmware"), "insitu_node"), (FW_TESTS, "fw_fixtures.py")]
    for base, rel in srcs:
        top = os.path.join(base, rel)
        files = [top] if top.endswith(".py") else [
            os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs if f.endswith(".py")]
        for f in files:
            out = os.path.join(dst, os.path.relpath(f, base))[:-3] + ".mpy"
            os.makedirs(os.path.dirname(out), exist_ok=True)
            subprocess.run([mpy_cross, "-o", out, f], check=True, timeout=60)


def test_control_step_does_not_allocate_and_heap_is_small(tmp_path):
    # The unix port is 64-bit (objects about twice a board's) and keeps the firmware's
    # bytecode (~61 KB here, with fault detection and checkpoints) on the heap, so 64K does not
    # fit code + node (104K leaves the room the config parse needs); a board freezes the
    # code into flash (firmware/manifest.py). The node's own state is what must stay small.
    compile_tree(str(tmp_path))
    r = run_mp(os.path.join(FW_TESTS, "heap_probe.py"), heap="104K", path=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    print("heap probe:", rep)
    assert rep["alloc_ticks"] == 0
    assert rep["measure_completed"]
    assert rep["node_bytes"] < 24 * 1024
