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


def run(root=""):
    node, cfg = make_node(root)
    node.overruns = 0
    node.reset_cause = reset_cause()
    outputs_off(node)
    link = StdioLink()
    link.write(codec.event(node.id, {"ev": "boot", "boots": node.boots, "cfg": node.cfg_hash,
                                     "persist": node.persist_status, "reset": node.reset_cause}))
    try:
        asyncio.run(_main(node, cfg, link))
    finally:  # Ctrl-C from mpremote, or a crash: leave the rig safe
        node.enter_safe()
