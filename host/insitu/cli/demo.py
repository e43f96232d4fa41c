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

from insitu.calibrate import calibrate_emulated
from insitu.cli.element import PROFILE_NAMES, add_element, element_profile
from insitu.cli.progress import Progress as _Progress

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
    from dataclasses import asdict

    from insitu.cli.main import UserError
    from insitu.cli.plot import plot_run
    from insitu.network.schema import load_network
    from insitu.rig.lab import board_hashes, open_rig, truth_gradient
    from insitu.rig.selftest import check_elements
    from insitu.store import RunStore
    from insitu.store.recorder import Recorder
    from insitu.tasks import make_task
    from insitu.trainers import insitu
    from insitu.trainers.common import TrainConfig
    from insitu.trainers.insitu import default_phases

    if args.epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {args.epochs}")
    args.profile = element_profile(args)
    net = load_network(args.network or "li-mao-2024")  # a bundled network, by name
    task = make_task("iris", net, args.seed)
    cfg = TrainConfig(
        epochs=args.epochs,
        seed=args.seed,
        lr=float(task.defaults.get("lr", 1.0)),
        batch=int(task.defaults.get("batch", 16)),
    )
    print(
        f"insitu demo: {len(net.boards)} emulated boards ({args.profile}) of {net.name}, "
        f"Iris, {args.epochs} epochs, seed {args.seed}",
        file=sys.stderr,
    )
    t0 = time.monotonic()
    store = RunStore(args.store)
    config = {"train": asdict(cfg), "method": "insitu", "task": {"task": "iris"}, "demo": True,
              "profile": args.profile, "eval_every": EVAL_EVERY, "gradient_epochs": [0, -1],
              "snapshot_every": 0, "period_ms": PERIOD_MS, "check_elements": True}  # fmt: skip
    hashes = board_hashes(net, args.profile, period_ms=PERIOD_MS)
    run_id = store.create_run("insitu", task.name, args.seed, config, net, args.profile, hashes)
    lab, rig = open_rig(net, profile=args.profile, seed=args.seed, period_ms=PERIOD_MS,
                        flash_dir=store.run_dir(run_id) / "boards")  # fmt: skip
    phases = default_phases(net, args.profile)
    if args.profile != "ideal":
        # a lab calibrates once before it trains: strain gains, force scale and offset
        calibrate_emulated(lab, rig, settle_ms=phases.settle_ms)
        print("  boards calibrated (strain gains, force scale and offset)", file=sys.stderr)
    # ... and checks that every stiffness element obeys (insitu check): a stuck one is frozen
    elements = check_elements(rig)
    store.add_event(run_id, "elements", elements.as_dict())
    print("  " + "\n  ".join(elements.lines()), file=sys.stderr)
    steps = -(-task.train.size // cfg.batch)
    rec = Recorder(store, run_id, rig=rig, truth=truth_gradient(lab), phases=phases,
                   gradient_epochs=(0, -1))  # fmt: skip
    result = insitu.train(
        net,
        task,
        cfg,
        callbacks=[_Progress(args.epochs, steps), rec],
        rig=rig,
        profile=args.profile,
        eval_every=EVAL_EVERY,
    )
    plots = plot_run(store, run_id, store.run_dir(run_id))
    f = result.final
    print(
        f"train accuracy {f.train_accuracy:.3f}  test accuracy {f.test_accuracy:.3f}  "
        f"({result.measurements} physical loadings, {rig.counters.sent} host messages, "
        f"{time.monotonic() - t0:.0f} s)"
    )
    print(f"run {run_id} recorded in {store.path}; plots: {', '.join(map(str, plots))}")
    return 0
