"""Long runs fail clean when the record cannot grow (issue 17 item 1): a full disk (here a
file size limit, RLIMIT_FSIZE, which makes every write past it fail as a full disk does) and a
store whose write lock another process holds. The run stops with one line naming the store,
the cause and the step, exit status 1, no traceback; every row written before stands, and
`insitu train --resume` finishes the run once the store can be written again."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-c", "import sys; from insitu.cli.main import main; sys.exit(main())"]
TRAIN = ["train", "li-mao-2024", "--task", "iris", "--method", "insilico", "--batch", "8",
         "--seed", "4", "--quiet"]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "INSITU_STORE"}  # runs/ in cwd
    return {**env, **extra}


def _small_disk() -> None:  # in the child: writes past 200 kB fail (EFBIG), no SIGXFSZ kill
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_full_disk_stops_the_run_clean_and_it_resumes_to_the_same_end(tmp_path: Path) -> None:
    r = subprocess.run([*CLI, *TRAIN, "--epochs", "300"], cwd=tmp_path, capture_output=True,
                       text=True, preexec_fn=_small_disk, env=_env())  # fmt: skip
    assert r.returncode == 1
    line = _one_line(r.stderr)
    assert line.startswith("insitu train: error: run store runs/insitu.sqlite: "), line
    assert "disk full" in line and "insitu train --resume 1" in line, line
    r = subprocess.run([*CLI, "train", "--resume", "1", "--json", "--quiet"], cwd=tmp_path,
                       capture_output=True, text=True, env=_env())  # fmt: skip
    assert r.returncode == 0, r.stderr
    resumed = json.loads(r.stdout)
    r = subprocess.run([*CLI, *TRAIN, "--epochs", "300", "--no-store", "--json"], cwd=tmp_path,
                       capture_output=True, text=True, env=_env())  # fmt: skip
    whole = json.loads(r.stdout)
    assert resumed["k_final"] == whole["k_final"]  # in silico: the redone steps are exact


def test_a_locked_store_stops_the_run_clean(tmp_path: Path) -> None:
    env = _env(INSITU_STORE_WAIT="0.5")
    proc = subprocess.Popen([*CLI, *TRAIN, "--epochs", "100000"], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True)  # fmt: skip
    store = tmp_path / "runs" / "insitu.sqlite"
    lock = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the run is recording steps
            if store.exists():
                with sqlite3.connect(store, timeout=5) as db:
                    try:
                        n = db.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
                    except sqlite3.OperationalError:
                        n = 0
                if n > 20:
                    break
            time.sleep(0.05)
        lock = sqlite3.connect(store, isolation_level=None, timeout=5)
        lock.execute("BEGIN IMMEDIATE")  # another process's write transaction, held
        err = proc.communicate(timeout=120)[1]
    finally:
        if lock is not None:
            lock.execute("ROLLBACK")
            lock.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    line = _one_line(err)
    assert "database is locked (another process holds its write lock; waited 0.5 s)" in line
    assert "run 1 stopped at step" in line and "insitu train --resume 1" in line, line
