# Boot runner of an insitu MicroPython-process board (runs on the board, started by the
# supervisor as `micropython -i -c "__import__('_emuboot').boot(globals())"`).
# Like a board's main loop: boot.py, then main.py (only when booting into the friendly REPL),
# each in the REPL's global namespace, exceptions printed and swallowed; SystemExit asks for a
# soft reset. It tells the supervisor when the interpreter can take Ctrl-C ("U") and when the
# REPL is about to start ("D", acknowledged, so the supervisor holds host input until the
# prompt is up and no Ctrl-C can hit the interpreter while it has no SIGINT handler).
import os
import sys
import time

import emubus


def _run(name, g):
    try:
        f = open(name)
    except OSError:
        return
    try:
        src = f.read()
    finally:
        f.close()
    try:
        exec(compile(src, name, "exec"), g)
    except SystemExit:
        emubus.notify("S")
        while True:
            time.sleep_ms(100)
    except BaseException as e:  # noqa: B036 - like pyexec: print anything, then carry on
        sys.print_exception(e)


def boot(g):
    try:
        emubus.notify("U")
        if os.getenv("INSITU_RUN_BOOT") == "1":
            _run("boot.py", g)
        if os.getenv("INSITU_RUN_MAIN") == "1":
            _run("main.py", g)
    except KeyboardInterrupt as e:  # Ctrl-C between the scripts: shown, like pyexec does
        sys.print_exception(e)
    while True:  # "D" must reach the supervisor, whatever Ctrl-C hits meanwhile
        try:
            emubus.request("D")
            return
        except KeyboardInterrupt:
            pass
