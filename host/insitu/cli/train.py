"""`insitu train`: train a network on a task (docs/training.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

HELP = "train a network on a task (behaviour, regression, iris, or your own)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from insitu.tasks import TASKS
    from insitu.trainers import METHODS
    from insitu.trainers.optim import OPTIMISERS

    p.add_argument("network", help="network file (TOML)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", choices=list(TASKS), help="a reference task")
    which.add_argument("--task-csv", metavar="FILE", help="samples from a CSV file")
    which.add_argument("--task-fn", metavar="MODULE:FUNCTION", help="fn(network, seed) -> Task")
    p.add_argument("--io", help="io set of the network for --task-csv when several match")
    p.add_argument("--method", choices=list(METHODS), default="insilico", help="training method")
    p.add_argument("--epochs", type=int, help="passes over the training set (task default)")
    p.add_argument("--batch", type=int, help="samples per step (task default)")
    p.add_argument("--lr", type=float, help="learning rate, N/m per step (task default)")
    p.add_argument("--optimiser", choices=OPTIMISERS, default="adam")
    p.add_argument("--seed", type=int, default=0, help="split, samples and shuffling")
    p.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="run seeds S..S+N-1; report each+mean"
    )
    p.add_argument(
        "--sharpness",
        type=float,
        help="iris: exponent g of p_j ~ |u_j|^g in the loss (1 = the paper's; default 5)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def _task(args: argparse.Namespace, net: Any, seed: int) -> Any:
    from insitu.cli.main import UserError
    from insitu.tasks import TaskError, from_callable, from_csv, make_task

    try:
        if args.task_csv:
            return from_csv(args.task_csv, net, seed, io=args.io)
        if args.task_fn:
            return from_callable(args.task_fn, net, seed)
        options = {}
        if args.sharpness is not None:
            if args.task != "iris":
                raise UserError("--sharpness applies to --task iris only")
            if not args.sharpness > 0:
                raise UserError(f"--sharpness must be > 0, got {args.sharpness}")
            options["sharpness"] = args.sharpness
        return make_task(args.task, net, seed, **options)
    except TaskError as exc:
        raise UserError(str(exc))


def _config(args: argparse.Namespace, task: Any, seed: int) -> Any:
    from insitu.cli.main import UserError
    from insitu.trainers.common import TrainConfig

    d = task.defaults
    try:
        return TrainConfig(
            epochs=args.epochs if args.epochs is not None else d.get("epochs", 100),
            batch=args.batch if args.batch is not None else d.get("batch", 16),
            lr=args.lr if args.lr is not None else d.get("lr", 1.0),
            seed=seed,
            optimiser=args.optimiser,
        )
    except ValueError as exc:
        raise UserError(str(exc))


def run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError
    from insitu.network.schema import load_network
    from insitu.trainers import method_module

    if args.repeat < 1:
        raise UserError(f"--repeat must be >= 1, got {args.repeat}")
    net = load_network(args.network)
    method = method_module(args.method)
    results = []
    for seed in range(args.seed, args.seed + args.repeat):
        task = _task(args, net, seed)
        results.append(method.train(net, task, _config(args, task, seed)))

    if args.repeat == 1:
        r = results[0]
        out: dict[str, Any] = r.summary()
        out["task_info"] = _task(args, net, args.seed).summary()
        out["config"] = r.to_dict()["config"]
        out["k_final"] = r.k_final.tolist()
        out["history"] = [h.to_dict() for h in r.history]
    else:
        out = {"runs": [r.summary() for r in results], **_aggregate(results)}
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        _print_readable(results, out)
    return 0


def _aggregate(results: list) -> dict[str, Any]:
    agg: dict[str, Any] = {}
    for key in ("train_accuracy", "test_accuracy", "final_loss", "test_loss"):
        vals = [r.summary()[key] for r in results]
        if all(v is not None for v in vals):
            agg[f"mean_{key}"] = float(np.mean(vals))
            agg[f"std_{key}"] = float(np.std(vals))
    return agg


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.2f} %" if pct else f"{v:.4g}"


def _print_readable(results: list, out: dict[str, Any]) -> None:
    r0 = results[0]
    c = r0.config
    print(
        f"{r0.method} training on {r0.task}: {c.epochs} epochs, batch {c.batch}, "
        f"{c.optimiser} lr {c.lr:g} N/m per step"
    )
    print(f"{'seed':>5} {'train acc':>10} {'test acc':>10} {'train loss':>11} {'test loss':>10}")
    for r in results:
        s = r.summary()
        print(
            f"{s['seed']:>5} {_fmt(s['train_accuracy'], True):>10} "
            f"{_fmt(s['test_accuracy'], True):>10} {_fmt(s['final_loss']):>11} "
            f"{_fmt(s['test_loss']):>10}"
        )
    if len(results) > 1:
        m = out
        print(
            f"{'mean':>5} {_fmt(m.get('mean_train_accuracy'), True):>10} "
            f"{_fmt(m.get('mean_test_accuracy'), True):>10} {_fmt(m['mean_final_loss']):>11} "
            f"{_fmt(m['mean_test_loss']):>10}"
        )
        if "std_test_accuracy" in m:
            print(f"test accuracy {_fmt(m['mean_test_accuracy'], True)} ± "
                  f"{_fmt(m['std_test_accuracy'], True)} over {len(results)} seeds")  # fmt: skip
    else:
        k = r0.k_final
        print(f"stiffness after training: {k.min():.1f} .. {k.max():.1f} N/m ({k.size} bonds)")
