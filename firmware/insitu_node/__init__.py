"""insitu_node: firmware of one node of a self-learning spring network.

Layers: pure logic (protocol/, learning/, config, sampling, persist, node), hardware (hal/),
application (app/). Runs under MicroPython 1.2x and imports under CPython >= 3.10 (the host
uses protocol.codec and learning.convention from here).
"""

VERSION = "0.1.0"
