# Node entry point. Safe-mode escape: a file named "safemode" on the board stops the app from
# starting (mpremote fs touch :safemode, then reset), so a broken deploy can always be fixed.
import os

try:
    os.stat("safemode")
except OSError:
    from insitu_node.app.main import run

    run()
else:
    print("insitu: safemode file present; app not started")
