"""asyncio application: fixed-period control task, command task on the USB link, supervisor."""

import asyncio

from ..compat import ticks_add, ticks_diff, ticks_ms
from ..hal.link import StdioLink
from ..protocol import codec
from .setup import make_node, outputs_off, reset_cause
from .supervisor import Watchdog

_sleep_ms = getattr(asyncio, "sleep_ms", None) or (lambda ms: asyncio.sleep(ms / 1000))


async def control(node, link):
    # drift-free: the next deadline advances by exactly one period from the previous one
    nxt = ticks_ms()
    while True:
        if node.tick(nxt):
            for line in node.service():
                link.write(line)
        nxt = ticks_add(nxt, node.period_ms)
        d = ticks_diff(nxt, ticks_ms())
        if d < 0:  # overrun (e.g. a long command): resynchronise instead of bursting
            node.overruns += 1
            nxt = ticks_ms()
            d = 0
        await _sleep_ms(d)


async def commands(node, link):
    while True:
        for line in link.lines():
            for reply in node.handle_line(line):
                link.write(reply)
        await _sleep_ms(1)


async def supervisor(wdt):
    while True:
        wdt.poll()
        await _sleep_ms(100)


async def _main(node, cfg, link):
    wdt = Watchdog(cfg["wdt"])
    await asyncio.gather(control(node, link), commands(node, link), supervisor(wdt))


def open_link(node):
    """(link, error): the USB serial link, or the bus drop when the flash holds bus.json
    (hal/bus.py, imported only then). A bus.json the board cannot use leaves it on USB and
    says why in its boot event, so the board stays reachable."""
    link = StdioLink()
    if node.hal.storage.read("bus.json") is None:
        return link, None
    try:
        from ..hal import bus

        return bus.open_link(bus.load(node.hal.storage), link), None
    except Exception as e:  # ValueError from bus.load, a pin the board does not have
        return link, f"{type(e).__name__}: {e}"


def run(root=""):
    node, cfg = make_node(root)
    node.overruns = 0
    node.reset_cause = reset_cause()
    outputs_off(node)
    link, bus_err = open_link(node)
    boot = {"ev": "boot", "boots": node.boots, "cfg": node.cfg_hash,
            "persist": node.persist_status, "reset": node.reset_cause}
    if bus_err:
        boot["bus_err"] = bus_err
    link.write(codec.event(node.id, boot))
    try:
        asyncio.run(_main(node, cfg, link))
    finally:  # Ctrl-C from mpremote, or a crash: leave the rig safe
        node.enter_safe()
