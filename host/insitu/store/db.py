"""The run store: one SQLite file (WAL) holding every run, its steps, epochs, snapshots, events
and gradient checks. This module is the one owner of the schema (docs/run-store.md).

Append-only: rows are only ever inserted; the one field that is updated is ``runs.status``.
Every insert commits at once, so a host killed at any point leaves every row it wrote before
the kill (a committed WAL transaction survives the process). Steps commit with
``synchronous=NORMAL`` (0.1–0.2 ms; FULL costs ~5 ms per commit on this machine's disk);
snapshots — the checkpoints a run resumes from — commit with ``synchronous=FULL``, which
also fsyncs every step before them, so a power cut loses at most the steps since the last
checkpoint, which a resume redoes. Rows a resumed run writes again for the same step/epoch
are ignored (UNIQUE(run, step)): the first write wins.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 2
DEFAULT_PATH = Path("runs") / "insitu.sqlite"
ENV = "INSITU_STORE"
STATUSES = ("running", "finished", "failed", "interrupted")

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL,
    applied TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'interrupted')),
    method TEXT NOT NULL,
    task TEXT NOT NULL,
    seed INTEGER NOT NULL,
    profile TEXT,
    config TEXT NOT NULL,
    network_name TEXT NOT NULL,
    network_source TEXT,
    network_text TEXT NOT NULL,
    network_sha256 TEXT NOT NULL,
    firmware_version TEXT NOT NULL,
    board_configs TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    python TEXT NOT NULL,
    packages TEXT NOT NULL,
    uid TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    run INTEGER NOT NULL REFERENCES runs(id),
    epoch INTEGER NOT NULL,
    step INTEGER NOT NULL,
    loss REAL,
    accuracy REAL,
    max_dk REAL,
    at_bound INTEGER,
    measurements INTEGER NOT NULL,
    messages INTEGER NOT NULL,
    time REAL NOT NULL,
    UNIQUE (run, step)
);
CREATE TABLE IF NOT EXISTS epochs (
    run INTEGER NOT NULL REFERENCES runs(id),
    epoch INTEGER NOT NULL,
    train_loss REAL,
    test_loss REAL,
    train_accuracy REAL,
    test_accuracy REAL,
    measurements INTEGER NOT NULL,
    time REAL NOT NULL,
    UNIQUE (run, epoch)
);
CREATE TABLE IF NOT EXISTS snapshots (
    run INTEGER NOT NULL REFERENCES runs(id),
    step INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    k TEXT NOT NULL,
    opt TEXT,
    on_boards INTEGER NOT NULL,
    measurements INTEGER NOT NULL,
    messages INTEGER NOT NULL,
    time REAL NOT NULL,
    UNIQUE (run, step)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run INTEGER NOT NULL REFERENCES runs(id),
    step INTEGER,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS gradients (
    run INTEGER NOT NULL REFERENCES runs(id),
    epoch INTEGER NOT NULL,
    step INTEGER NOT NULL,
    bond INTEGER NOT NULL,
    insitu REAL NOT NULL,
    exact REAL NOT NULL,
    UNIQUE (run, step, bond)
);
CREATE INDEX IF NOT EXISTS events_run ON events (run);
"""


class StoreError(ValueError):
    """A run that does not exist, a store file that is not a run store, a newer schema."""


class StoreWriteError(StoreError):
    """The store refused a write mid-run: the disk is full, another process holds the write
    lock longer than ``$INSITU_STORE_WAIT`` seconds (default 30), an I/O error. Every row
    written before it stands (one commit per row), so the run resumes from its last
    checkpoint once the cause is gone."""


WAIT_ENV = "INSITU_STORE_WAIT"


def _wait_s() -> float:
    try:
        v = float(os.environ.get(WAIT_ENV, "30"))
    except ValueError:
        raise StoreError(f"${WAIT_ENV}: not a number of seconds") from None
    if not 0 <= v <= 3600:
        raise StoreError(f"${WAIT_ENV}: {v:g} s is not within 0..3600")
    return v


def _writes(fn: Any) -> Any:
    """A write method: sqlite's errors become StoreWriteError, naming the store and why."""

    @functools.wraps(fn)
    def wrapper(self: RunStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.Error as exc:
            msg = str(exc)
            if "locked" in msg or "busy" in msg:
                why = f"{msg} (another process holds its write lock; waited {self.wait_s:g} s)"
            elif "full" in msg or "I/O" in msg:
                why = f"{msg} (disk full, or a file size limit?)"
            else:
                why = msg
            raise StoreWriteError(f"run store {self.path}: {why}") from exc

    return wrapper


def default_path() -> Path:
    """``$INSITU_STORE`` if set, else ./runs/insitu.sqlite."""
    env = os.environ.get(ENV)
    return Path(env) if env else DEFAULT_PATH


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _packages() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("insitu", "numpy", "scipy", "matplotlib", "pyserial"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _json(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), default=_default)


def _default(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def _num(v: Any) -> float | None:
    """A float for SQLite, NULL for None and NaN."""
    if v is None:
        return None
    f = float(v)
    return None if f != f else f


@dataclass(frozen=True)
class Checkpoint:
    """A snapshot with everything needed to continue: stiffness and optimiser state."""

    run: int
    step: int
    epoch: int
    k: np.ndarray
    opt: dict[str, Any] | None  # {"name", "t", "m", "v"}; per bond in network order
    on_boards: bool  # the boards were told to save this state to their flash
    measurements: int
    messages: int


class RunStore:
    """A connection to one run store file (created with its schema if missing)."""

    def __init__(self, path: str | Path | None = None, synchronous: str = "NORMAL") -> None:
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.wait_s = _wait_s()  # how long a write waits for another writer's lock
        self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=self.wait_s)
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a run store ({exc})")
        self.synchronous = synchronous
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        have = self.db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'"
        ).fetchone()
        if have:
            row = self.db.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
            v = row["v"] or 0
            if v > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {v}; this insitu reads up to "
                    f"{SCHEMA_VERSION} (upgrade insitu)"
                )
            if v == SCHEMA_VERSION:
                return
            if v == 1:  # version 2 adds runs.uid (NULL for the runs made before it)
                self.db.executescript(
                    "BEGIN IMMEDIATE;"
                    "ALTER TABLE runs ADD COLUMN uid TEXT;"
                    f"INSERT INTO schema_version (version, applied) VALUES (2, '{_now_iso()}');"
                    "COMMIT;"
                )
                return
        # one script, one transaction (executescript commits whatever is open before it)
        self.db.executescript(
            "BEGIN IMMEDIATE;"
            + SCHEMA
            + f"INSERT INTO schema_version (version, applied) SELECT {SCHEMA_VERSION}, "
            f"'{_now_iso()}' WHERE NOT EXISTS "
            f"(SELECT 1 FROM schema_version WHERE version = {SCHEMA_VERSION});"
            "COMMIT;"
        )

    def run_dir(self, run: int) -> Path:
        """Files that belong to a run (emulated boards' flash, plots):
        ``<store dir>/<store name>-runs/<run>-<uid>/``, uid being the run's own random id. A
        run id repeats across stores and when a store is deleted and made again; the uid does
        not, so a new run never boots boards another run left trained (it once did: a "fresh"
        run started from an earlier run's flash). Runs recorded before uids (schema 1) keep
        their old directory, ``<store dir>/<run>/``."""
        row = self.db.execute("SELECT uid FROM runs WHERE id = ?", (int(run),)).fetchone()
        if row is None:
            raise StoreError(f"no run {run} in {self.path}")
        if row["uid"] is None:
            return self.path.parent / str(int(run))
        return self.path.parent / f"{self.path.stem}-runs" / f"{int(run)}-{row['uid'][:12]}"

    # ------------------------------------------------------------------ writing

    @_writes
    def create_run(
        self,
        method: str,
        task: str,
        seed: int,
        config: Mapping[str, Any],
        network: Any,
        profile: str | None = None,
        board_configs: Mapping[int, str] | None = None,
    ) -> int:
        """A new run (status running); returns its id. ``network`` is a schema.Network."""
        from insitu_node import VERSION as FIRMWARE_VERSION

        cur = self.db.execute(
            """INSERT INTO runs (created, status, method, task, seed, profile, config,
                network_name, network_source, network_text, network_sha256, firmware_version,
                board_configs, host, pid, python, packages, uid)
               VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                _now_iso(),
                method,
                task,
                int(seed),
                profile,
                _json(config),
                network.name,
                str(network.source),
                network.text,
                network.sha256,
                FIRMWARE_VERSION,
                _json({str(b): h for b, h in (board_configs or {}).items()}),
                socket.gethostname(),
                os.getpid(),
                f"{platform.python_implementation()} {sys.version.split()[0]}",
                _json(_packages()),
                uuid.uuid4().hex,
            ),
        )
        return int(cur.lastrowid)

    @_writes
    def set_status(self, run: int, status: str) -> None:
        """The one update the store makes."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        self.db.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run))

    @_writes
    def add_step(
        self,
        run: int,
        epoch: int,
        step: int,
        loss: float | None,
        accuracy: float | None = None,
        max_dk: float | None = None,
        at_bound: int | None = None,
        measurements: int = 0,
        messages: int = 0,
    ) -> bool:
        """One optimiser step; False if the step was already recorded (a resumed run)."""
        cur = self.db.execute(
            """INSERT OR IGNORE INTO steps (run, epoch, step, loss, accuracy, max_dk, at_bound,
                measurements, messages, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                run, epoch, step, _num(loss), _num(accuracy), _num(max_dk),
                None if at_bound is None else int(at_bound), int(measurements), int(messages),
                time.time(),
            ),
        )  # fmt: skip
        return cur.rowcount > 0

    @_writes
    def add_epoch(
        self,
        run: int,
        epoch: int,
        train_loss: float | None,
        test_loss: float | None,
        train_accuracy: float | None,
        test_accuracy: float | None,
        measurements: int = 0,
    ) -> bool:
        cur = self.db.execute(
            """INSERT OR IGNORE INTO epochs (run, epoch, train_loss, test_loss, train_accuracy,
                test_accuracy, measurements, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                run, epoch, _num(train_loss), _num(test_loss), _num(train_accuracy),
                _num(test_accuracy), int(measurements), time.time(),
            ),
        )  # fmt: skip
        return cur.rowcount > 0

    @_writes
    def add_snapshot(
        self,
        run: int,
        step: int,
        epoch: int,
        k: np.ndarray,
        opt: Mapping[str, Any] | None = None,
        on_boards: bool = False,
        measurements: int = 0,
        messages: int = 0,
    ) -> bool:
        # a snapshot is a checkpoint: fsync it (and every WAL frame before it) even when
        # steps are written with synchronous=NORMAL
        self.db.execute("PRAGMA synchronous=FULL")
        cur = self.db.execute(
            """INSERT OR IGNORE INTO snapshots (run, step, epoch, k, opt, on_boards,
                measurements, messages, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                run, step, epoch, _json([float(x) for x in np.asarray(k)]),
                None if opt is None else _json(opt), int(bool(on_boards)), int(measurements),
                int(messages), time.time(),
            ),
        )  # fmt: skip
        self.db.execute(f"PRAGMA synchronous={self.synchronous}")
        return cur.rowcount > 0

    @_writes
    def add_event(
        self, run: int, kind: str, detail: Mapping[str, Any] | None = None, step: int | None = None
    ) -> None:
        self.db.execute(
            "INSERT INTO events (run, step, kind, detail, time) VALUES (?, ?, ?, ?, ?)",
            (run, step, kind, _json(dict(detail or {})), time.time()),
        )

    @_writes
    def add_gradient(
        self, run: int, epoch: int, step: int, insitu: np.ndarray, exact: np.ndarray
    ) -> None:
        rows = [
            (run, epoch, step, b, float(a), float(e))
            for b, (a, e) in enumerate(zip(insitu, exact, strict=True))
        ]
        self.db.execute("BEGIN")
        try:
            self.db.executemany(
                """INSERT OR IGNORE INTO gradients (run, epoch, step, bond, insitu, exact)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                rows,
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    @_writes
    def import_run(
        self, src: RunStore, run: int, extra_events: Sequence[tuple[str, Mapping[str, Any]]] = ()
    ) -> int:
        """Copy run ``run`` of store ``src`` with all its rows into this store, plus
        ``extra_events`` (kind, detail) on it, in one transaction: afterwards the run is here
        complete, or (on any error, a kill included) not at all. Returns its id here."""
        row = src.db.execute("SELECT * FROM runs WHERE id = ?", (int(run),)).fetchone()
        if row is None:
            raise StoreError(f"no run {run} in {src.path}")
        cols = [c for c in row.keys() if c != "id"]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            cur = self.db.execute(
                f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [row[c] for c in cols],
            )
            new = int(cur.lastrowid)
            for table in ("steps", "epochs", "snapshots", "events", "gradients"):
                rows = src.db.execute(f"SELECT * FROM {table} WHERE run = ?", (int(run),))
                rows = rows.fetchall()
                if not rows:
                    continue
                names = [c for c in rows[0].keys() if c != "id"]  # events renumber
                sql = (
                    f"INSERT INTO {table} ({', '.join(names)}) "
                    f"VALUES ({', '.join('?' * len(names))})"
                )
                self.db.executemany(
                    sql, [[new if c == "run" else r[c] for c in names] for r in rows]
                )
            for kind, detail in extra_events:
                self.db.execute(
                    "INSERT INTO events (run, step, kind, detail, time) VALUES (?, ?, ?, ?, ?)",
                    (new, None, kind, _json(dict(detail)), time.time()),
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return new

    # ------------------------------------------------------------------ reading

    def run(self, run: int | str) -> dict[str, Any]:
        """The runs row as a dict (JSON columns decoded); StoreError if there is none."""
        try:
            rid = int(run)
        except (TypeError, ValueError):
            raise StoreError(f"run ids are numbers, not {run!r}")
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (rid,)).fetchone()
        if row is None:
            raise StoreError(f"no run {rid} in {self.path}")
        d = dict(row)
        for key in ("config", "board_configs", "packages"):
            d[key] = json.loads(d[key])
        return d

    def runs(self) -> list[dict[str, Any]]:
        """Every run with its progress: id, created, status, method, task, seed, profile,
        steps, last epoch and its scores."""
        rows = self.db.execute(
            """SELECT r.id, r.created, r.status, r.method, r.task, r.seed, r.profile, r.host,
                      r.pid, r.config,
                      (SELECT MAX(step) FROM steps s WHERE s.run = r.id) AS steps,
                      e.epoch, e.train_accuracy, e.test_accuracy, e.train_loss, e.test_loss
               FROM runs r LEFT JOIN epochs e ON e.run = r.id
                 AND e.epoch = (SELECT MAX(epoch) FROM epochs x WHERE x.run = r.id)
               ORDER BY r.id"""
        ).fetchall()
        out = []
        for row in rows:
            d = dict(row)
            d["epochs"] = json.loads(d.pop("config")).get("train", {}).get("epochs")
            out.append(d)
        return out

    def steps(self, run: int) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM steps WHERE run = ? ORDER BY step", run)

    def epochs(self, run: int) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM epochs WHERE run = ? ORDER BY epoch", run)

    def events(self, run: int) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM events WHERE run = ? ORDER BY id", run)
        for r in rows:
            r["detail"] = json.loads(r["detail"])
        return rows

    def snapshots(self, run: int) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM snapshots WHERE run = ? ORDER BY step", run)
        for r in rows:
            r["k"] = json.loads(r["k"])
            r["opt"] = None if r["opt"] is None else json.loads(r["opt"])
        return rows

    def gradients(self, run: int) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM gradients WHERE run = ? ORDER BY step, bond", run)

    def checkpoints(self, run: int) -> Iterator[Checkpoint]:
        """Snapshots that carry optimiser state, newest first."""
        for r in reversed(self.snapshots(run)):
            if r["opt"] is None:
                continue
            yield Checkpoint(
                run=run,
                step=int(r["step"]),
                epoch=int(r["epoch"]),
                k=np.array(r["k"], dtype=float),
                opt=r["opt"],
                on_boards=bool(r["on_boards"]),
                measurements=int(r["measurements"]),
                messages=int(r["messages"]),
            )

    def _rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute(sql, params).fetchall()]

    def tables(self) -> Sequence[str]:
        return [
            r["name"]
            for r in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
