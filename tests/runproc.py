"""`insitu` as a real subprocess, killed with SIGKILL: helpers for the host-crash tests
(test_resume.py, test_reliability_crash.py). The store is read with a read-only connection of
its own, as another process would; a store that does not exist yet reads as empty."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSITU = [sys.executable, "-m", "insitu.cli.main"]


def query(db: Path, sql: str, *params: Any) -> list[tuple]:
    """Rows of a read-only query; [] while the store or its tables do not exist yet (any
    other error is raised: a test must not take a store it cannot read for an empty one)."""
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise


def max_step(db: Path) -> int:
    rows = query(db, "SELECT MAX(step) FROM steps")
    return int(rows[0][0] or 0) if rows else 0


class Running:
    """cmd started with stdout and stderr in unnamed temporary files (a pipe nobody reads
    while the test polls the store could fill up and block the run)."""

    def __init__(self, cmd: list[str], cwd: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._files = (tempfile.TemporaryFile(), tempfile.TemporaryFile())
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=self._files[0], stderr=self._files[1]
        )

    def output(self) -> tuple[str, str]:
        """(stdout, stderr) once the process has ended (waits for it)."""
        self.proc.wait()
        texts = []
        for f in self._files:
            f.seek(0)
            texts.append(f.read().decode(errors="replace"))
        return texts[0], texts[1]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        for f in self._files:
            f.close()


@dataclass
class Ended:
    """How a process ended: killed after `elapsed` s, or exited with `returncode`."""

    pid: int
    killed: bool
    returncode: int
    elapsed: float
    stdout: str
    stderr: str


def kill_when(
    cmd: list[str], cwd: Path, ready: Callable[[float], bool], then: float = 0.0
) -> Ended:
    """Run cmd; SIGKILL it `then` s after `ready(seconds since start)` (polled every 2 ms)
    first holds, unless it ends before."""
    run = Running(cmd, cwd)
    try:
        deadline = run.t0 + 300
        while run.proc.poll() is None:
            if ready(time.monotonic() - run.t0):
                time.sleep(then)
                run.proc.send_signal(signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "run too slow"
            time.sleep(0.002)
        out, err = run.output()
        elapsed = time.monotonic() - run.t0
    finally:
        run.close()
    rc = run.proc.returncode
    return Ended(run.proc.pid, rc == -signal.SIGKILL, rc, elapsed, out, err)


def kill_after(cmd: list[str], cwd: Path, delay: float) -> Ended:
    """Run cmd; SIGKILL it `delay` seconds after it started unless it ended before."""
    return kill_when(cmd, cwd, lambda t: t >= delay)


def killed_when(cmd: list[str], cwd: Path, ready: Callable[[float], bool]) -> None:
    """kill_when, and the process must have been killed (not ended on its own)."""
    end = kill_when(cmd, cwd, ready)
    assert end.killed, f"run ended before it was killed: {end.stderr[-500:]}"


def kill_at_step(cmd: list[str], db: Path, at_step: int, cwd: Path) -> None:
    """Run cmd; SIGKILL it as soon as the store holds step `at_step`."""
    killed_when(cmd, cwd, lambda _: max_step(db) >= at_step)


def run_json(cmd: list[str], cwd: Path) -> tuple[dict, Ended]:
    """Run cmd (which prints --json) to its end; its JSON and how it ended."""
    end = kill_after(cmd, cwd, 300.0)
    assert end.returncode == 0, f"{' '.join(cmd[2:])} exited {end.returncode}: {end.stderr[-800:]}"
    return json.loads(end.stdout), end


def boards_dir(db: Path, run: int = 1) -> Path:
    """The emulated boards' flash of a run (RunStore.run_dir); a path that does not exist
    while the run is not in the store yet (killed before it was created)."""
    from insitu.store import RunStore, StoreError

    if not db.exists():
        return db.parent / "no-run-yet"
    with RunStore(db) as st:
        try:
            return st.run_dir(run) / "boards"
        except StoreError:
            return db.parent / "no-run-yet"


def flash_steps(boards_dir: Path) -> dict[str, int | None]:
    """Per emulated board (by id), the optimiser step count of the state it would boot with:
    its main flash file, else the backup (None: neither is valid)."""
    from insitu_node import persist

    out: dict[str, int | None] = {}
    if not boards_dir.is_dir():
        return out
    for d in sorted(boards_dir.iterdir(), key=lambda p: (len(p.name), p.name)):
        recs = [persist.unpack(f.read_bytes()) for f in (d / persist.MAIN, d / persist.BACKUP)
                if f.exists()]  # fmt: skip
        rec = next((r for r in recs if r is not None), None)
        out[d.name] = None if rec is None else int(rec["opt"]["t"])
    return out
