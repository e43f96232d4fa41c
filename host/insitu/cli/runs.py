"""`insitu runs`: list the recorded runs, show one, export one (docs/run-store.md)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any

HELP = "list recorded runs; show or export one (runs show RUN, runs export RUN)"

TABLES = ("steps", "epochs", "snapshots", "events", "gradients")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store", metavar="PATH", help="run store (default $INSITU_STORE or runs/insitu.sqlite)"
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    lst = sub.add_parser("list", help="every run, one line each (the default)")
    show = sub.add_parser("show", help="one run: metadata, scores, events, gradient checks")
    show.add_argument("run")
    show.add_argument("--json", action="store_true", help="print JSON")
    exp = sub.add_parser("export", help="one run as JSON (everything) or CSV (one table)")
    exp.add_argument("run")
    exp.add_argument("--format", choices=("json", "csv"), default="json")
    exp.add_argument(
        "--table", choices=TABLES, default="steps", help="CSV: which table (default steps)"
    )
    exp.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    for sp in (lst, show, exp):  # --store also after the action; the parent's value stands
        sp.add_argument("--store", metavar="PATH", default=argparse.SUPPRESS, help="run store")


def _open(args: argparse.Namespace, must_exist: bool = True) -> Any:
    from insitu.cli.main import UserError
    from insitu.store import RunStore, StoreError, default_path

    path = Path(args.store) if args.store else default_path()
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a run store file")
    if must_exist and not path.exists():
        raise UserError(f"no run store at {path} (train something first, or give --store)")
    if must_exist and path.stat().st_size == 0:  # sqlite would make it a store: reading
        raise UserError(f"{path}: empty file, not a run store")  # never writes
    try:
        return RunStore(path)
    except StoreError as exc:
        raise UserError(str(exc))
    except sqlite3.Error as exc:
        raise UserError(f"{path}: {exc}")


def _row(store: Any, run: str) -> dict[str, Any]:
    from insitu.cli.main import UserError
    from insitu.store import StoreError

    try:
        return store.run(run)
    except StoreError as exc:
        raise UserError(str(exc))


def _status(row: dict[str, Any], store: Any = None) -> str:
    """'running' for a live process; 'running?' when its process is gone (killed: resume it)."""
    from insitu.store.recorder import pid_alive

    if row["status"] != "running" or row.get("host") != socket.gethostname():
        return row["status"]
    pid = row.get("pid")
    if store is not None:
        for e in store.events(row["id"]):
            if e["kind"] == "resume":
                pid = e["detail"].get("pid", pid)
    return "running" if pid and pid_alive(int(pid)) else "running?"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def run(args: argparse.Namespace) -> int:
    action = args.action or "list"
    if action == "list":
        return _list(args)
    if action == "show":
        return _show(args)
    return _export(args)


def _list(args: argparse.Namespace) -> int:
    store = _open(args)
    rows = store.runs()
    if not rows:
        print(f"no runs in {store.path}")
        return 0
    print(
        f"{'run':>4}  {'created':<25} {'status':<11} {'method':<9} {'task':<12} {'seed':>4} "
        f"{'profile':<9} {'epoch':>7} {'train':>6} {'test':>6}"
    )
    for r in rows:
        ep = "-" if r["epoch"] is None else f"{r['epoch']}/{r['epochs']}"
        print(
            f"{r['id']:>4}  {r['created']:<25} {_status(r, store):<11} {r['method']:<9} "
            f"{r['task']:<12} {r['seed']:>4} {r['profile'] or '-':<9} {ep:>7} "
            f"{_pct(r['train_accuracy']):>6} {_pct(r['test_accuracy']):>6}"
        )
    print(f"({len(rows)} runs in {store.path})")
    return 0


def gradient_stats(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per recorded gradient check: cosine similarity and relative error of in situ vs exact."""
    import numpy as np

    by: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for g in rows:
        by.setdefault((g["epoch"], g["step"]), []).append(g)
    out = []
    for (epoch, step), gs in sorted(by.items()):
        a = np.array([g["insitu"] for g in gs])
        b = np.array([g["exact"] for g in gs])
        nb = float(np.linalg.norm(b))
        cos = float(a @ b / (np.linalg.norm(a) * nb)) if nb and np.linalg.norm(a) else float("nan")
        rel = float(np.linalg.norm(a - b) / nb) if nb else float("nan")
        out.append({"epoch": epoch, "step": step, "cosine": cos, "rel_err": rel})
    return out


def _summary(store: Any, row: dict[str, Any]) -> dict[str, Any]:
    rid = row["id"]
    epochs = store.epochs(rid)
    steps = store.steps(rid)
    events = store.events(rid)
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    meta = {k: v for k, v in row.items() if k != "network_text"}
    meta["status"] = _status(row, store)
    return {
        **meta,
        "steps": len(steps),
        "measurements": steps[-1]["measurements"] if steps else 0,
        "messages": steps[-1]["messages"] if steps else 0,
        "epochs": epochs,
        "snapshots": len(store.snapshots(rid)),
        "events": kinds,
        "gradient_checks": gradient_stats(store.gradients(rid)),
        "flash": str(store.run_dir(rid) / "boards"),
    }


def _show(args: argparse.Namespace) -> int:
    store = _open(args)
    row = _row(store, args.run)
    s = _summary(store, row)
    if args.json:
        print(json.dumps(s, indent=1))
        return 0
    c = row["config"]
    t = c.get("train", {})
    print(f"run {row['id']}: {row['method']} on {row['task']}, seed {row['seed']} — {s['status']}")
    print(f"  created    {row['created']} on {row['host']} (pid {row['pid']})")
    print(
        f"  network    {row['network_name']} ({row['network_source']}), "
        f"sha256 {row['network_sha256'][:16]}…"
    )
    boards = row["board_configs"]
    print(
        f"  firmware   {row['firmware_version']}"
        + (f", {len(boards)} boards, profile {row['profile']}" if boards else " (no boards)")
    )
    pkgs = ", ".join(f"{k} {v}" for k, v in row["packages"].items())
    print(f"  software   {row['python']}; {pkgs}")
    print(
        f"  config     {t.get('epochs')} epochs, batch {t.get('batch')}, {t.get('optimiser')} "
        f"lr {t.get('lr')}, snapshot every {c.get('snapshot_every') or 'epoch'}"
    )
    print(
        f"  recorded   {s['steps']} steps, {len(s['epochs'])} epoch scores, {s['snapshots']} "
        f"snapshots, {s['measurements']} loadings, {s['messages']} messages"
    )
    if s["events"]:
        print("  events     " + ", ".join(f"{k} {n}" for k, n in sorted(s["events"].items())))
    if s["epochs"]:
        print(f"  {'epoch':>6} {'train loss':>11} {'test loss':>10} {'train':>7} {'test':>7}")
        eps = s["epochs"]
        shown = eps if len(eps) <= 12 else eps[:3] + [None] + eps[-6:]
        for e in shown:
            if e is None:
                print(f"  {'…':>6}")
                continue
            print(
                f"  {e['epoch']:>6} {e['train_loss']:>11.4g} {e['test_loss']:>10.4g} "
                f"{_pct(e['train_accuracy']):>7} {_pct(e['test_accuracy']):>7}"
            )
    for g in s["gradient_checks"]:
        print(
            f"  gradient check after epoch {g['epoch']}: cosine {g['cosine']:.4f}, "
            f"relative error {g['rel_err']:.3g}"
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    store = _open(args)
    row = _row(store, args.run)
    rid = row["id"]
    if args.format == "json":
        data = {
            "run": row,
            "steps": store.steps(rid),
            "epochs": store.epochs(rid),
            "snapshots": store.snapshots(rid),
            "events": store.events(rid),
            "gradients": store.gradients(rid),
        }
        text = json.dumps(data, indent=1)
    else:
        text = _csv(store, rid, args.table)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _csv(store: Any, rid: int, table: str) -> str:
    rows: list[dict[str, Any]] = getattr(store, table)(rid)
    if table == "snapshots":  # one column per bond: k_0 .. k_{B-1}; optimiser state left out
        flat = []
        for r in rows:
            d = {k: v for k, v in r.items() if k not in ("k", "opt")}
            d["opt_t"] = (r["opt"] or {}).get("t")
            d.update({f"k_{b}": x for b, x in enumerate(r["k"])})
            flat.append(d)
        rows = flat
    elif table == "events":
        rows = [{**r, "detail": json.dumps(r["detail"])} for r in rows]
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()
