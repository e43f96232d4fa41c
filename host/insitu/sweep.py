"""Sweeps: a grid of independent training runs on a Dask cluster, recorded in the run store.

A grid is networks x methods x profiles x seeds for one task. Each point is one `insitu train`
(the command a lab runs by hand, called in the worker's process), trained into a store of its
own under the sweep's work directory; when it finishes, the client copies that run into the
sweep's store in one transaction (``RunStore.import_run``) with an event naming the sweep and
the point. So every point is in the store complete, or not at all: a worker killed mid-run
loses only its own scratch store, Dask runs the point again elsewhere, and a point is imported
once (by its key). Running the same sweep again (same name and store) skips the points already
recorded: an interrupted sweep resumes.

The cluster is a ``distributed.LocalCluster`` (worker processes, one thread each: the trainers
and the emulator are single-threaded Python) unless a scheduler address is given.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SWEEP_EVENT = "sweep"


class SweepError(ValueError):
    """A grid that cannot run (bad values, no cluster), said in one line."""


@dataclass(frozen=True)
class Point:
    """One run of the grid."""

    network: str
    method: str
    profile: str
    seed: int

    @property
    def key(self) -> str:
        name = Path(self.network).stem
        return f"{name}/{self.method}/{self.profile}/seed{self.seed}"


@dataclass
class Grid:
    networks: list[str]
    methods: list[str]
    profiles: list[str]
    seeds: list[int]
    task: str
    epochs: int | None = None
    extra: list[str] = field(default_factory=list)  # more `insitu train` flags, same for all

    def points(self) -> list[Point]:
        return [
            Point(n, m, p, s)
            for n, m, p, s in itertools.product(
                self.networks, self.methods, self.profiles, self.seeds
            )
        ]

    def argv(self, point: Point, store: Path) -> list[str]:
        argv = ["train", point.network, "--task", self.task, "--method", point.method,
                "--profile", point.profile, "--seed", str(point.seed), "--store", str(store),
                "--json", "--quiet"]  # fmt: skip
        if self.epochs is not None:
            argv += ["--epochs", str(self.epochs)]
        return argv + list(self.extra)

    def name(self) -> str:
        """A default sweep name: the grid's own hash (the same grid resumes the same sweep)."""
        text = json.dumps(
            [self.networks, self.methods, self.profiles, self.seeds, self.task, self.epochs,
             self.extra]  # fmt: skip
        )
        return "sweep-" + hashlib.sha256(text.encode()).hexdigest()[:10]


MAX_SEEDS = 10_000  # a sweep's seeds: far beyond any lab's, and a typo never fills the memory


def parse_seeds(text: str) -> list[int]:
    """'0-3' -> [0, 1, 2, 3]; '1,5,7' -> [1, 5, 7]; '2' -> [2]."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        a, dash, b = part.partition("-")
        try:
            if dash:
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                hi = min(hi, lo + MAX_SEEDS)  # beyond is refused below, never listed
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise SweepError(f"seeds {text!r}: expected N, N-M or a comma list, e.g. 0-3") from None
    if len(out) > MAX_SEEDS:
        raise SweepError(f"seeds {text!r}: more than {MAX_SEEDS:,} seeds")
    if any(s < 0 or s > 2**32 - 1 for s in out) or len(set(out)) != len(out):
        raise SweepError(f"seeds {text!r}: each once, within 0 .. 2^32-1")
    return out


def train_point(argv: Sequence[str], scratch: str) -> dict[str, Any]:
    """Run `insitu train argv` in this process (a Dask task); its JSON result, or the error."""
    from insitu.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as exc:  # argparse
            status = int(exc.code or 0)
    result: dict[str, Any] = {"status": status, "scratch": scratch}
    if status == 0:
        result["result"] = json.loads(out.getvalue())
    else:
        result["error"] = (err.getvalue().strip().splitlines() or ["failed"])[-1]
    return result


def done_keys(store: Any, name: str) -> dict[str, int]:
    """Points of sweep ``name`` already recorded in ``store``: key -> run id."""
    rows = store.db.execute(
        "SELECT run, detail FROM events WHERE kind = ? ORDER BY id", (SWEEP_EVENT,)
    ).fetchall()
    out: dict[str, int] = {}
    for r in rows:
        d = json.loads(r["detail"])
        if d.get("sweep") == name:
            out.setdefault(d["key"], int(r["run"]))
    return out


def summary_row(point: Point, run: int, result: dict[str, Any]) -> dict[str, Any]:
    res = (result.get("results") or [result])[-1] if isinstance(result, dict) else {}
    row = {"key": point.key, "network": point.network, "method": point.method,
           "profile": point.profile, "seed": point.seed, "run": run}  # fmt: skip
    for k in ("train_accuracy", "test_accuracy", "final_loss", "measurements", "loadings",
              "rig_seconds"):  # fmt: skip
        if k in res:
            row[k] = res[k]
    return row


def run_sweep(
    grid: Grid,
    store_path: Path,
    name: str | None = None,
    workers: int = 2,
    scheduler: str | None = None,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Run every point of ``grid`` not yet in the store; returns the sweep's summary."""
    from insitu.store import RunStore

    name = name or grid.name()
    points = grid.points()
    if not points:
        raise SweepError("the grid is empty")
    work = store_path.parent / f"{store_path.stem}-sweeps" / name
    work.mkdir(parents=True, exist_ok=True)
    with RunStore(store_path) as store:
        have = done_keys(store, name)
    todo = [p for p in points if p.key not in have]
    rows: dict[str, dict[str, Any]] = {}
    failed: list[dict[str, Any]] = []
    if todo:
        own = client is None
        if own:
            client = _client(workers, scheduler)
        try:
            futures = {}
            for p in todo:
                scratch = work / f"{p.key.replace('/', '_')}-{uuid.uuid4().hex[:8]}"
                fut = client.submit(
                    train_point, grid.argv(p, scratch / "runs.sqlite"), str(scratch),
                    key=f"insitu-{name}-{p.key}", pure=False, retries=2,
                )  # fmt: skip
                futures[fut] = p
            from distributed import as_completed

            done = len(points) - len(todo)
            for fut in as_completed(futures):
                p = futures[fut]
                try:
                    res = fut.result()
                except Exception as exc:  # the task failed on every try (e.g. killed thrice)
                    res = {"status": 1, "error": f"{type(exc).__name__}: {exc}", "scratch": None}
                done += 1
                if res["status"] == 0:
                    rows[p.key] = _import(store_path, name, p, res)
                else:
                    failed.append({"key": p.key, "error": res["error"]})
                if res.get("scratch"):
                    shutil.rmtree(res["scratch"], ignore_errors=True)
                if progress is not None:
                    progress(done, len(points), rows.get(p.key) or failed[-1])
        finally:
            if own:
                cluster = getattr(client, "cluster", None)
                client.close()
                if cluster is not None:
                    cluster.close()
        for left in work.glob("*-*"):  # scratch of attempts whose worker was killed
            if left.is_dir():
                shutil.rmtree(left, ignore_errors=True)
    with RunStore(store_path) as store:
        have = done_keys(store, name)
        results = []
        for p in points:
            if p.key in rows:
                results.append(rows[p.key])
            elif p.key in have:
                results.append(_recorded_row(store, p, have[p.key]))
    return {"sweep": name, "store": str(store_path), "points": len(points),
            "recorded_before": len(points) - len(todo), "results": results,
            "failed": failed}  # fmt: skip


def _import(store_path: Path, name: str, p: Point, res: dict[str, Any]) -> dict[str, Any]:
    from insitu.store import RunStore

    scratch_store = Path(res["scratch"]) / "runs.sqlite"
    with RunStore(scratch_store) as src, RunStore(store_path) as dst:
        run = int(src.runs()[-1]["id"])
        detail = {"sweep": name, "key": p.key, "network": p.network, "method": p.method,
                  "profile": p.profile, "seed": p.seed}  # fmt: skip
        new = dst.import_run(src, run, [(SWEEP_EVENT, detail)])
    return summary_row(p, new, res["result"])


def _recorded_row(store: Any, p: Point, run: int) -> dict[str, Any]:
    """A summary row for a point recorded by an earlier (interrupted) sweep."""
    epochs = store.epochs(run)
    last = epochs[-1] if epochs else {}
    steps = store.steps(run)
    return {"key": p.key, "network": p.network, "method": p.method, "profile": p.profile,
            "seed": p.seed, "run": run, "train_accuracy": last.get("train_accuracy"),
            "test_accuracy": last.get("test_accuracy"),
            "measurements": steps[-1]["measurements"] if steps else 0}  # fmt: skip


def _client(workers: int, scheduler: str | None) -> Any:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SweepError("sweeps need Dask: pip install 'insitu[sweep]'") from None
    if scheduler:
        try:
            return Client(scheduler, timeout=30)
        except OSError as exc:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
        silence_logs=50,  # CRITICAL: a worker the test kills on purpose is not news
    )  # fmt: skip
    return Client(cluster)


def table(results: Iterable[dict[str, Any]]) -> str:
    """A plain-text table of a sweep's results."""
    lines = [f"{'run':>5} {'point':<42} {'train':>7} {'test':>7} {'loadings':>9}"]
    for r in results:
        tr, te = r.get("train_accuracy"), r.get("test_accuracy")
        lines.append(
            f"{r['run']:>5} {r['key']:<42} "
            f"{'-' if tr is None else f'{100 * tr:.1f}%':>7} "
            f"{'-' if te is None else f'{100 * te:.1f}%':>7} {r.get('measurements', 0):>9}"
        )
    return "\n".join(lines)
