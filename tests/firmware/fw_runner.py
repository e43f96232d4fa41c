"""Tiny test runner for the firmware cases, usable by MicroPython (no pytest there).

    micropython fw_runner.py        (MICROPYPATH=firmware:tests/firmware)

Prints one line per case, then "N passed, N failed"; exit status 1 on any failure. The pytest
side (tests/test_firmware_cases.py) collects the same functions through all_cases().
"""

import sys

MODULES = ("case_codec", "case_validate", "case_config", "case_learning", "case_hal",
           "case_persist", "case_node", "case_reliability", "case_cal", "case_coil",
           "case_hx711", "case_fuzz", "case_bus")
# every tests/firmware/case_*.py is listed (a pytest checks it)


def all_cases():
    out = []
    for name in MODULES:
        mod = __import__(name)
        for attr in sorted(dir(mod)):
            if attr.startswith("test_"):
                out.append((name, attr, getattr(mod, attr)))
    return out


def main():
    passed = failed = 0
    for mod, name, fn in all_cases():
        try:
            fn()
        except Exception as e:  # report and go on: every case runs
            failed += 1
            print(f"FAIL {mod}.{name}: {type(e).__name__} {e}")
            if hasattr(sys, "print_exception"):
                sys.print_exception(e)
        else:
            passed += 1
            print(f"PASS {mod}.{name}")
    print(f"{passed} passed, {failed} failed")
    return failed


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
