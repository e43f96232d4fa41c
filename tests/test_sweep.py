"""`insitu sweep`: a grid of runs on a Dask LocalCluster, each recorded once, complete."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from insitu.cli.main import main
from insitu.store import RunStore
from insitu.sweep import Grid, SweepError, done_keys, parse_seeds, run_sweep

LI_MAO = "hardware/networks/li-mao-2024.toml"


def _check_store(store: Path, name: str, n: int, epochs: int) -> None:
    """n runs, each finished with every epoch, each point of the sweep once."""
    with RunStore(store) as s:
        runs = s.runs()
        assert len(runs) == n and all(r["status"] == "finished" for r in runs)
        for r in runs:
            assert [e["epoch"] for e in s.epochs(r["id"])] == list(range(epochs + 1))
        keys = done_keys(s, name)
        assert len(keys) == n and sorted(keys.values()) == [r["id"] for r in runs]


def test_sweep_command_runs_the_grid_and_resumes(
    tmp_path: Path, repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "runs.sqlite"
    argv = ["sweep", str(repo_root / LI_MAO), "--task", "iris", "--methods", "insilico,insitu",
            "--seeds", "0-3", "--epochs", "2", "--workers", "2", "--store", str(store),
            "--json"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert len(summary["results"]) == 8 and summary["failed"] == []
    assert {r["method"] for r in summary["results"]} == {"insilico", "insitu"}
    assert {r["seed"] for r in summary["results"]} == {0, 1, 2, 3}
    assert all(0 <= r["test_accuracy"] <= 1 for r in summary["results"])
    assert "8/8" in err
    _check_store(store, summary["sweep"], 8, 2)
    out_dir = store.parent / "runs-sweeps" / summary["sweep"]
    assert (out_dir / "results.png").read_bytes()[:4] == b"\x89PNG"
    # the same sweep again: everything is recorded, nothing runs twice
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["recorded_before"] == 8 and len(again["results"]) == 8
    assert {r["run"] for r in again["results"]} == {r["run"] for r in summary["results"]}
    _check_store(store, summary["sweep"], 8, 2)


def test_a_worker_killed_mid_sweep_loses_no_run_and_duplicates_none(
    tmp_path: Path, repo_root: Path
) -> None:
    from distributed import Client, LocalCluster

    grid = Grid([str(repo_root / LI_MAO)], ["insitu"], ["ideal"], [0, 1, 2, 3, 4, 5], "iris", 2)
    store = tmp_path / "runs.sqlite"
    killed: list[int] = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=50) as cluster, \
            Client(cluster) as client:  # fmt: skip

        def progress(done: int, total: int, row: dict[str, Any]) -> None:
            if killed:
                return
            busy = [w for w, keys in client.processing().items() if keys]
            assert busy, "no task running to kill a worker under"
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)  # the nanny starts a new worker
            killed.append(pid)

        summary = run_sweep(grid, store, "killed", progress=progress, client=client)
    assert killed and summary["failed"] == []
    assert len(summary["results"]) == 6
    _check_store(store, "killed", 6, 2)
    assert not list((store.parent / "runs-sweeps" / "killed").glob("*-*"))  # no scratch left


@pytest.mark.parametrize(
    "text, want", [("0-3", [0, 1, 2, 3]), ("1,5,7", [1, 5, 7]), ("2", [2])]
)
def test_seed_lists(text: str, want: list[int]) -> None:
    assert parse_seeds(text) == want


@pytest.mark.parametrize("text", ["3-1", "a", "1,1", "-2", "", "0-99999999", "4294967296",
                                  "0-9000,9001-10001"])
def test_bad_seed_lists_are_refused(text: str) -> None:
    with pytest.raises(SweepError):
        parse_seeds(text)


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--methods", "insitu,nosuch"], "unknown nosuch"),
        (["--profiles", "gold"], "unknown gold"),
        (["--seeds", "5-1"], "seeds"),
        (["--workers", "0"], "--workers 0"),
        (["--workers", "100000"], "a local cluster of at most"),  # was: 10^5 processes started
        (["--seeds", "0-99999999"], "more than 10,000 seeds"),  # was: a 10^8-point grid
    ],
)
def test_sweep_refuses_bad_arguments(
    extra: list[str], says: str, tmp_path: Path, repo_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    store = tmp_path / "runs.sqlite"
    argv = ["sweep", str(repo_root / LI_MAO), "--task", "iris", "--store", str(store), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
    assert not store.exists()  # nothing written
