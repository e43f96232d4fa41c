"""Kill the host mid-run (SIGKILL, a real subprocess) and resume: the final stiffnesses match
an uninterrupted run with the same seed — in silico, and in situ on emulated ideal boards whose
flash outlives the host."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import LI_MAO
from runproc import INSITU, kill_at_step

from insitu.cli.main import main
from insitu.store import RunStore


def _train_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _check_steps(db: Path, run: int, total: int) -> None:
    with RunStore(db) as st:
        steps = [s["step"] for s in st.steps(run)]
        assert steps == list(range(1, total + 1))  # no gap, no duplicate
        assert st.run(run)["status"] == "finished"
        kinds = [e["kind"] for e in st.events(run)]
        assert kinds.count("resume") == 1 and kinds[-1] == "end"


def test_insilico_killed_and_resumed_matches_uninterrupted(tmp_path, capsys):
    epochs = 80  # 560 steps: long enough to be killed mid-run
    db = tmp_path / "killed.sqlite"
    args = ["train", str(LI_MAO), "--task", "iris", "--epochs", str(epochs), "--seed", "3"]
    at = random.Random().randint(5, 7 * epochs - 40)
    kill_at_step([*INSITU, *args, "--store", str(db), "--snapshot-every", "5"], db, at, tmp_path)
    with RunStore(db) as st:
        assert st.run(1)["status"] == "running"  # killed: nobody said otherwise
    resumed = _train_json(
        ["train", "--resume", "1", "--store", str(db), "--json", "--quiet"], capsys
    )
    plain = _train_json([*args, "--no-store", "--json", "--quiet"], capsys)
    assert resumed["run"] == 1
    assert np.array_equal(resumed["k_final"], plain["k_final"]), f"killed at step {at}"
    assert resumed["test_accuracy"] == plain["test_accuracy"]
    assert [h["epoch"] for h in resumed["history"]] == list(range(epochs + 1))
    _check_steps(db, 1, 7 * epochs)


def test_insitu_ideal_killed_and_resumed_matches_uninterrupted(tmp_path, capsys):
    epochs = 2  # 14 steps
    common = ["--task", "iris", "--epochs", str(epochs), "--seed", "1", "--method", "insitu"]
    common += ["--profile", "ideal", "--snapshot-every", "3", "--gradient-epochs", ""]
    args = ["train", str(LI_MAO), *common]
    db = tmp_path / "killed.sqlite"
    at = random.Random().randint(1, 7 * epochs - 2)
    kill_at_step([*INSITU, *args, "--store", str(db)], db, at, tmp_path)
    resumed = _train_json(
        ["train", "--resume", "1", "--store", str(db), "--json", "--quiet"], capsys
    )
    plain = _train_json(
        [*args, "--store", str(tmp_path / "plain" / "s.sqlite"), "--json", "--quiet"], capsys
    )
    assert np.array_equal(resumed["k_final"], plain["k_final"]), f"killed at step {at}"
    _check_steps(db, 1, 7 * epochs)
    with RunStore(db) as st:
        resume = next(e for e in st.events(1) if e["kind"] == "resume")["detail"]
        connects = [e["detail"]["boards"] for e in st.events(1) if e["kind"] == "connect"]
    # the boards booted from the flash they saved: boot count 2, state restored
    assert set(resume["boots"].values()) == {2}
    assert {b["persist"] for b in connects[-1].values()} == {"ok"}
    with RunStore(db) as st:
        assert (st.run_dir(1) / "boards" / "11" / "state.json").exists()


def test_resume_refuses_a_finished_run_and_unknown_runs(tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    argv = ["train", str(LI_MAO), "--task", "iris", "--epochs", "1", "--store", str(db)]
    assert main([*argv, "--quiet", "--json"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "1", "--store", str(db)]) == 2
    assert "finished" in capsys.readouterr().err
    assert main(["train", "--resume", "9", "--store", str(db)]) == 2
    assert "no run 9" in capsys.readouterr().err
    assert main(["train", str(LI_MAO), "--resume", "1", "--store", str(db)]) == 2
    assert "drop the network file" in capsys.readouterr().err
