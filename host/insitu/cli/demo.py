"""`insitu demo`: emulated li-mao-2024 boards (realistic profile) learn Iris in situ.

Every board runs the real firmware node core in this process; the host drives them through
the session layer exactly as it would drive a bench, and computes only dL/du at the outputs.
Default length: the paper's 100 epochs, about 1 s of emulation each on one core (~21,400
physical loadings in all; on a bench each epoch is ~10 min: every phase waits 10 τ to settle).
"""

from __future__ import annotations

import argparse
import sys
import time

from insitu.cli.element import PROFILE_NAMES, add_element, element_profile

HELP = "emulated boards learn Iris in situ (li-mao-2024, realistic profile)"

DEFAULT_EPOCHS = 100
# score train and test sets every this many epochs (150 forward loadings each time, ~7 %)
EVAL_EVERY = 10
PERIOD_MS = 25  # the demo's boards run a 25 ms control period (recorded with the run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--epochs", type=int, default=DEFAULT_EPOCHS, help="epochs (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="realistic", choices=PROFILE_NAMES)
    add_element(p)
    p.add_argument("--network", default=None, help="network file (default: li-mao-2024)")
    p.add_argument("--store", metavar="PATH", help="run store (default runs/insitu.sqlite)")


def run(args: argparse.Namespace) -> int:
    """`insitu train` with the demo's settings (calibrate, check the elements, score every
    10 epochs, a 25 ms control period), then the run's plots: one run, resumable with
    `insitu train --resume RUN` like any other."""
    from insitu.cli import train
    from insitu.cli.main import UserError
    from insitu.cli.plot import plot_run

    if args.epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {args.epochs}")
    element_profile(args)  # refuses what the demo's boards cannot be
    argv = [args.network or "li-mao-2024", "--task", "iris", "--method", "insitu",
            "--epochs", str(args.epochs), "--seed", str(args.seed), "--profile", args.profile,
            "--element", args.element, "--eval-every", str(EVAL_EVERY),
            "--check-elements"]  # fmt: skip
    if args.profile != "ideal":
        argv.append("--calibrate")  # a lab calibrates once before it trains
    if args.store:
        argv += ["--store", args.store]
    parser = argparse.ArgumentParser(prog="insitu train")
    train.add_arguments(parser)
    targs = parser.parse_args(argv)
    targs.period_ms = PERIOD_MS
    print(f"insitu demo: emulated boards ({args.profile}, {args.element}), Iris, "
          f"{args.epochs} epochs, seed {args.seed}: insitu train {' '.join(argv)}",
          file=sys.stderr)  # fmt: skip
    t0 = time.monotonic()
    net, results, jobs, store = train.train_runs(targs)
    train.report(targs, net, results, jobs, store)
    job, result = jobs[0], results[0]
    plots = plot_run(store, job.run_id, store.run_dir(job.run_id))
    f = result.final
    print(f"train accuracy {f.train_accuracy:.3f}  test accuracy {f.test_accuracy:.3f}  "
          f"({result.measurements} physical loadings, {result.rig_seconds / 3600:.1f} h of rig "
          f"time, {job.rig.counters.sent} host messages, {time.monotonic() - t0:.0f} s)")
    print(f"plots: {', '.join(map(str, plots))}")  # fmt: skip
    return 0
