"""Every file under firmware/ compiles with mpy-cross, exactly as for a board."""

import os
import subprocess

import pytest
from test_firmware_micropython import ROOT, find_tool

FILES = sorted(
    os.path.relpath(os.path.join(d, f), ROOT)
    for d, _, fs in os.walk(os.path.join(ROOT, "firmware"))
    for f in fs
    if f.endswith(".py")
)


def test_there_are_firmware_files():
    assert "firmware/main.py" in FILES and len(FILES) > 20


@pytest.mark.parametrize("path", FILES)
def test_mpy_cross_compiles(path, tmp_path):
    out = tmp_path / "out.mpy"
    r = subprocess.run([find_tool("mpy-cross"), "-o", str(out), os.path.join(ROOT, path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0
