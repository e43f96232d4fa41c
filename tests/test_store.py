"""The run store: schema, append-only rows, durability settings, listing and export."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from insitu.cli.main import main
from insitu.network.schema import load_network
from insitu.store import SCHEMA_VERSION, RunStore, StoreError

LI_MAO = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"


@pytest.fixture()
def store(tmp_path):
    with RunStore(tmp_path / "s.sqlite") as st:
        yield st


def _run(store: RunStore) -> int:
    net = load_network(LI_MAO)
    return store.create_run("insilico", "iris", 4, {"train": {"epochs": 2}}, net, None, {1: "ab"})


def test_schema_wal_and_version(store):
    assert set(store.tables()) >= {
        "runs", "steps", "epochs", "snapshots", "events", "gradients", "schema_version"
    }  # fmt: skip
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 2
    RunStore(store.path).close()  # opening again does not add a version row
    n = store.db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0]
    assert n == 1 and SCHEMA_VERSION == 2


def test_a_version_1_store_is_migrated_and_keeps_its_run_dirs(tmp_path):
    """Schema 2 adds runs.uid; runs made before it keep <store dir>/<run>/, new ones get
    their own directory."""
    import sqlite3

    from insitu.store.db import SCHEMA

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    v1 = SCHEMA.replace("NOT NULL,\n    uid TEXT\n", "NOT NULL\n")
    assert "uid" not in v1
    db.executescript(v1)
    db.execute("INSERT INTO schema_version VALUES (1, 'then')")
    db.execute(
        "INSERT INTO runs (created, status, method, task, seed, config, network_name,"
        " network_text, network_sha256, firmware_version, board_configs, host, pid, python,"
        " packages) VALUES ('t', 'finished', 'insilico', 'iris', 0, '{}', 'n', '', '', '0',"
        " '{}', 'h', 1, 'py', '{}')"
    )
    db.commit()
    db.close()
    with RunStore(path) as st:
        assert [r[0] for r in st.db.execute("SELECT version FROM schema_version")] == [1, 2]
        assert st.run_dir(1) == tmp_path / "1"
        rid = _run(st)
        assert st.run_dir(rid).parent == tmp_path / "old-runs"


def test_newer_schema_is_refused(store):
    store.db.execute("INSERT INTO schema_version VALUES (99, 'x')")
    with pytest.raises(StoreError, match="schema version 99"):
        RunStore(store.path)


def test_run_metadata(store):
    rid = _run(store)
    r = store.run(rid)
    net = load_network(LI_MAO)
    assert r["status"] == "running" and r["seed"] == 4 and r["method"] == "insilico"
    assert r["network_text"] == net.text and r["network_sha256"] == net.sha256
    assert r["firmware_version"] and r["board_configs"] == {"1": "ab"}
    assert r["python"].startswith("CPython") and "numpy" in r["packages"]
    with pytest.raises(StoreError, match="no run 99"):
        store.run(99)


def test_steps_are_unique_and_first_write_wins(store):
    rid = _run(store)
    assert store.add_step(rid, 1, 1, 0.5, measurements=3)
    assert not store.add_step(rid, 1, 1, 0.9)  # a resumed run redoing step 1
    assert store.add_step(rid, 1, 2, float("nan"))
    rows = store.steps(rid)
    assert [(r["step"], r["loss"], r["measurements"]) for r in rows] == [(1, 0.5, 3), (2, None, 0)]
    assert store.add_epoch(rid, 0, 1.0, 1.1, 0.3, None)
    assert not store.add_epoch(rid, 0, 9.0, 9.0, 0.0, 0.0)


def test_status_is_the_only_update(store):
    rid = _run(store)
    store.set_status(rid, "interrupted")
    store.set_status(rid, "finished")
    assert store.run(rid)["status"] == "finished"
    with pytest.raises(ValueError):
        store.set_status(rid, "done")
    with pytest.raises(sqlite3.IntegrityError):  # the CHECK holds even for raw SQL
        store.db.execute("UPDATE runs SET status = 'bogus' WHERE id = ?", (rid,))


def test_snapshots_and_checkpoints(store):
    rid = _run(store)
    k = np.linspace(100, 170, 28)
    store.add_snapshot(rid, 0, 0, k, {"name": "adam", "t": 0, "m": [0.0] * 28, "v": [0.0] * 28})
    store.add_snapshot(rid, 3, 1, k + 1)  # a plain snapshot: no optimiser state
    store.add_snapshot(rid, 7, 1, k + 2, {"name": "adam", "t": 7, "m": [1.0] * 28, "v": [2.0] * 28})
    cps = list(store.checkpoints(rid))
    assert [c.step for c in cps] == [7, 0]
    assert np.array_equal(cps[0].k, k + 2)  # exact round trip of float64 through JSON
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # back to NORMAL


def test_events_and_gradients(store):
    rid = _run(store)
    store.add_event(rid, "faults", {"retries": 2}, step=5)
    store.add_gradient(rid, 0, 0, np.array([1.0, 2.0]), np.array([1.1, 2.1]))
    assert store.events(rid)[0]["detail"] == {"retries": 2}
    assert [g["bond"] for g in store.gradients(rid)] == [0, 1]


def test_cli_train_list_show_export(tmp_path, capsys):
    db = str(tmp_path / "s.sqlite")
    argv = ["train", str(LI_MAO), "--task", "iris", "--epochs", "2", "--store", db, "--quiet"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run"] == 1 and out["measurements"] == 0
    assert main(["runs", "--store", db]) == 0
    listing = capsys.readouterr().out
    assert "insilico" in listing and "finished" in listing and "2/2" in listing
    assert main(["runs", "--store", db, "show", "1"]) == 0
    assert "14 steps" in capsys.readouterr().out
    assert main(["runs", "--store", db, "export", "1", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["steps"]) == 14 and len(data["epochs"]) == 3
    assert len(data["snapshots"]) == 3  # step 0 and both epoch ends
    out_csv = tmp_path / "snap.csv"
    argv = ["runs", "--store", db, "export", "1", "--format", "csv", "--table", "snapshots"]
    assert main([*argv, "-o", str(out_csv)]) == 0
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert [int(r["step"]) for r in rows] == [0, 7, 14] and "k_27" in rows[0]
    assert main(["runs", "--store", db, "show", "5"]) == 2
    assert "no run 5" in capsys.readouterr().err


def test_a_run_whose_process_died_shows_as_running_question_mark(tmp_path, capsys, monkeypatch):
    import subprocess
    import sys

    from insitu.store import db as dbmod

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    monkeypatch.setattr(dbmod.os, "getpid", lambda: dead.pid)
    with RunStore(tmp_path / "s.sqlite") as st:
        _run(st)
    assert main(["runs", "--store", str(tmp_path / "s.sqlite")]) == 0
    assert "running?" in capsys.readouterr().out
