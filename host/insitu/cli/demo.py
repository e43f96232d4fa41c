"""`insitu demo`: emulated li-mao-2024 boards (realistic profile) learn Iris in situ.

Every board runs the real firmware node core in this process; the host drives them through
the session layer exactly as it would drive a bench, and computes only dL/du at the outputs.
Default length: 6 epochs (measured 19–25 s of emulation per epoch on a shared 2-core machine,
so about two minutes; on a bench each epoch is ~10 min: every phase waits 10 τ to settle).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HELP = "emulated boards learn Iris in situ (li-mao-2024, realistic profile)"

DEFAULT_EPOCHS = 6


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--epochs", type=int, default=DEFAULT_EPOCHS, help="epochs (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="realistic", choices=("ideal", "realistic", "harsh"))
    p.add_argument("--network", default=None, help="network file (default: li-mao-2024)")


class _Progress:
    """A plain stderr progress line per epoch (no dependencies)."""

    def __init__(self, epochs: int, steps_per_epoch: int) -> None:
        self.epochs = epochs
        self.total = max(1, epochs * steps_per_epoch)
        self.t0 = time.monotonic()
        self.losses: list[float] = []

    def on_start(self, *args) -> None:
        pass

    def on_step(self, info) -> None:
        self.losses.append(info.loss)
        done = info.step / self.total
        bar = "#" * int(30 * done)
        loss = sum(self.losses[-8:]) / len(self.losses[-8:])
        sys.stderr.write(
            f"\r  epoch {info.epoch}/{self.epochs} [{bar:<30}] {100 * done:5.1f}%  "
            f"loss {loss:.3f}  {time.monotonic() - self.t0:6.1f} s"
        )
        sys.stderr.flush()

    def on_epoch(self, rec) -> None:
        if rec.epoch == 0:
            sys.stderr.write(
                f"  initial: train {rec.train_accuracy:.3f}  test {rec.test_accuracy:.3f}\n"
            )
        else:
            tr, te = rec.train_accuracy, rec.test_accuracy
            sys.stderr.write(f"\n  epoch {rec.epoch}: train {tr:.3f}  test {te:.3f}\n")

    def on_end(self, result) -> None:
        sys.stderr.write("\n")


def run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError
    from insitu.network.schema import load_network
    from insitu.rig import emulated_rig
    from insitu.tasks import make_task
    from insitu.trainers import insitu
    from insitu.trainers.common import TrainConfig

    if args.epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {args.epochs}")
    path = (
        args.network or Path(__file__).resolve().parents[3] / "hardware/networks/li-mao-2024.toml"
    )
    net = load_network(path)
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
    _, rig = emulated_rig(net, args.profile, seed=args.seed, period_ms=25)
    steps = -(-task.train.size // cfg.batch)
    result = insitu.train(
        net,
        task,
        cfg,
        callbacks=[_Progress(args.epochs, steps)],
        rig=rig,
        profile=args.profile,
        eval_every=args.epochs,
    )
    f = result.final
    print(
        f"train accuracy {f.train_accuracy:.3f}  test accuracy {f.test_accuracy:.3f}  "
        f"({result.measurements} physical loadings, {rig.counters.sent} host messages, "
        f"{time.monotonic() - t0:.0f} s)"
    )
    return 0
