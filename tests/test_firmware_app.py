"""The asyncio app end to end under MicroPython: firmware/main.py, config.json, an emubus stub,
frames on stdin, replies (boot event, identify, a deferred measure) on stdout."""

import os
import subprocess
import sys
import time

from test_firmware_micropython import FW_TESTS, ROOT, find_tool

sys.path.insert(0, FW_TESTS)

import fw_fixtures as fx  # noqa: E402

from insitu_node.config import canonical  # noqa: E402
from insitu_node.protocol import codec  # noqa: E402

EMUBUS = '''
def read(device, channel):
    if device == "ready":
        raise KeyError(device)
    return 1000


def write(device, channel, value):
    pass
'''


def test_main_py_serves_frames(tmp_path):
    (tmp_path / "config.json").write_text(canonical(fx.config(2)))
    (tmp_path / "emubus.py").write_text(EMUBUS)
    path = os.pathsep.join([".frozen", os.path.join(ROOT, "firmware"), str(tmp_path)])
    p = subprocess.Popen([find_tool("micropython"), os.path.join(ROOT, "firmware", "main.py")],
                         cwd=tmp_path, env=dict(os.environ, MICROPYPATH=path),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        p.stdin.write(b"garbage line\n")
        p.stdin.write((codec.encode(1, "n1", "identify") + "\n").encode())
        measure = codec.encode(2, "*", "measure", {"phase": "forward", "n": 3})
        p.stdin.write((measure + "\n").encode())
        p.stdin.flush()
        frames = []
        deadline = time.monotonic() + 20
        while len(frames) < 3 and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            f = codec.parse(line)
            if f is not None:
                frames.append(f)
    finally:
        p.kill()
        p.wait()
    assert [f.op for f in frames] == ["evt", "ok", "ok"], frames
    assert frames[0].args["ev"] == "boot" and frames[0].args["boots"] == 1
    assert frames[1].seq == 1 and frames[1].args["id"] == "n1"
    assert frames[2].seq == 2 and frames[2].args["u"] == [1000 * 1e-6]
    assert (tmp_path / "boots.txt").exists()
