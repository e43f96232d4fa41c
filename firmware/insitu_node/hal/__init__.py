"""Hardware layer: duck-typed device interfaces (interfaces.py), drivers, one builder per
board family (rp2.py, esp32.py) and one for the emulator (emu.py)."""
