"""`insitu sweep`: a grid of training runs (networks x methods x profiles x seeds) on Dask."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

HELP = "run a grid of training runs on a Dask cluster (local by default), into the run store"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("networks", nargs="+", help="network files (TOML) or bundled names")
    p.add_argument("--task", required=True, help="reference task (iris, regression, ...)")
    p.add_argument("--methods", default="insitu", help="comma list of methods (insitu)")
    p.add_argument("--profiles", default="realistic", help="comma list of board profiles")
    p.add_argument("--seeds", default="0", help="seeds: N, N-M or a comma list (0)")
    p.add_argument("--epochs", type=int, help="epochs per run (task default)")
    p.add_argument("--workers", type=int, default=2, help="local Dask worker processes (2)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="use this Dask scheduler instead")
    p.add_argument("--name", help="sweep name (default: a hash of the grid; same name resumes)")
    p.add_argument(
        "--store", metavar="PATH", help="run store (default $INSITU_STORE or runs/insitu.sqlite)"
    )
    p.add_argument("--out", metavar="DIR", help="summary table and plot (default: beside store)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def _list(text: str, flag: str) -> list[str]:
    from insitu.cli.main import UserError

    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items or len(set(items)) != len(items):
        raise UserError(f"{flag} {text!r}: a comma list of distinct names")
    return items


def run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError
    from insitu.store import default_path
    from insitu.sweep import Grid, SweepError, parse_seeds, run_sweep, table
    from insitu.trainers import METHODS

    methods = _list(args.methods, "--methods")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise UserError(f"--methods: unknown {', '.join(bad)} (known: {', '.join(METHODS)})")
    profiles = _list(args.profiles, "--profiles")
    from insitu.emulator.hardware import PROFILES

    bad = [p for p in profiles if p not in PROFILES]
    if bad:
        raise UserError(f"--profiles: unknown {', '.join(bad)} (known: {', '.join(PROFILES)})")
    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: at least 1")
    cores = os.cpu_count() or 1
    if args.scheduler is None and args.workers > 4 * cores:  # each is a process here
        raise UserError(f"--workers {args.workers}: a local cluster of at most {4 * cores} "
                        f"worker processes on this machine's {cores} cores")  # fmt: skip
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs {args.epochs}: at least 1")
    try:
        seeds = parse_seeds(args.seeds)
    except SweepError as exc:
        raise UserError(f"--{exc}")
    from insitu.network.schema import load_network

    networks = []
    for n in args.networks:
        net = load_network(n)  # refuses a bad file here, not in every worker
        networks.append(str(Path(net.source).resolve()) if Path(net.source).exists() else n)
    grid = Grid(networks, methods, profiles, seeds, args.task, args.epochs)
    store = Path(args.store) if args.store else default_path()

    bar = None
    live = sys.stderr.isatty()  # a bar on a terminal, a line per finished run elsewhere

    def progress(done: int, total: int, row: dict[str, Any]) -> None:
        nonlocal bar
        if args.quiet:
            return
        if live:
            if bar is None:
                from tqdm import tqdm

                bar = tqdm(total=total, file=sys.stderr, unit="run", desc="sweep")
            bar.update(done - bar.n)
        else:
            what = row.get("error") or (
                f"run {row['run']}, test {row.get('test_accuracy', float('nan')):.3f}"
            )
            print(f"  {done}/{total} {row['key']}: {what}", file=sys.stderr, flush=True)

    try:
        summary = run_sweep(grid, store, args.name, args.workers, args.scheduler, progress)
    except SweepError as exc:
        raise UserError(str(exc))
    finally:
        if bar is not None:
            bar.close()
    out = Path(args.out) if args.out else store.parent / f"{store.stem}-sweeps" / summary["sweep"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    (out / "results.txt").write_text(table(summary["results"]) + "\n")
    png = _plot(summary, out / "results.png")
    if args.json:
        print(json.dumps(summary))
    else:
        print(table(summary["results"]))
    print(
        f"sweep {summary['sweep']}: {len(summary['results'])} of {summary['points']} runs in "
        f"{store} ({summary['recorded_before']} recorded before); {len(summary['failed'])} "
        f"failed; summary {out / 'results.txt'}, {png}",
        file=sys.stderr,
    )
    for f in summary["failed"]:
        print(f"  failed {f['key']}: {f['error']}", file=sys.stderr)
    return 1 if summary["failed"] else 0


def _plot(summary: dict[str, Any], path: Path) -> Path:
    """Test accuracy per run, grouped by method (one marker per seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["results"] if r.get("test_accuracy") is not None]
    groups = sorted({(r["method"], r["profile"], Path(r["network"]).stem) for r in rows})
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(groups) + 2), 3.6), dpi=110)
    for i, g in enumerate(groups):
        acc = [100 * r["test_accuracy"] for r in rows
               if (r["method"], r["profile"], Path(r["network"]).stem) == g]  # fmt: skip
        ax.scatter([i] * len(acc), acc, s=18, alpha=0.8)
        if acc:
            ax.plot([i - 0.25, i + 0.25], [sum(acc) / len(acc)] * 2, color="k", lw=1.5)
    ax.set_xticks(range(len(groups)), ["\n".join(g) for g in groups], fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{summary['sweep']}: {len(rows)} runs (bar: mean)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
