"""The firmware logic cases (tests/firmware/case_*.py) under CPython via pytest.

The same functions run under MicroPython in test_firmware_micropython.py.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "firmware"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "firmware"))

import fw_runner  # noqa: E402

CASES = fw_runner.all_cases()


@pytest.mark.parametrize("fn", [c[2] for c in CASES], ids=["{}.{}".format(*c[:2]) for c in CASES])
def test_case(fn):
    fn()


def test_every_case_file_is_in_the_runner():
    """MicroPython has no glob for the runner to find case files with: the list is written
    out, and a case file missing from it would run on neither interpreter."""
    files = sorted(f[:-3] for f in os.listdir(os.path.join(HERE, "firmware"))
                   if f.startswith("case_") and f.endswith(".py"))  # fmt: skip
    assert sorted(fw_runner.MODULES) == files
