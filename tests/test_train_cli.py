"""`insitu train`: methods from the registry, emulated boards, JSON, progress, the run record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from insitu.cli.main import main
from insitu.store import RunStore

LI_MAO = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"


def test_insilico_json_has_the_headline_keys(tmp_path, capsys):
    argv = ["train", str(LI_MAO), "--task", "iris", "--epochs", "1", "--json", "--no-store"]
    assert main(argv) == 0
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    for key in ("run", "train_accuracy", "test_accuracy", "final_loss", "measurements"):
        assert key in out
    assert out["run"] is None and out["measurements"] == 0
    assert "epoch 1/1: train" in cap.err  # progress is on stderr, never in the JSON
    assert not (tmp_path / "runs").exists()


def test_insitu_on_ideal_boards_records_a_run(tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    argv = ["train", str(LI_MAO), "--task", "behaviour", "--epochs", "3", "--snapshot-every", "2"]
    argv += ["--method", "insitu", "--profile", "ideal", "--store", str(db), "--json", "--quiet"]
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert cap.err == ""
    out = json.loads(cap.out)
    assert out["run"] == 1 and out["method"] == "insitu" and out["profile"] == "ideal"
    # one sample: 2 loadings per step, scores (train + test) after epochs 0..3, the tare, and
    # the two gradient checks (2 loadings each)
    assert out["measurements"] == 3 * 2 + 4 * 2 + 1 + 2 * 2
    with RunStore(db) as st:
        run = st.run(1)
        assert run["profile"] == "ideal" and len(run["board_configs"]) == 14
        steps = st.steps(1)
        assert [s["step"] for s in steps] == [1, 2, 3]
        assert steps[-1]["measurements"] > steps[0]["measurements"] > 0
        assert [c.step for c in st.checkpoints(1)] == [3, 2, 1, 0]
        assert all(c.on_boards for c in st.checkpoints(1))
        # each checkpoint also records what the elements realise (the nodes' calibrated maps)
        realised = [e for e in st.events(1) if e["kind"] == "realised"]
        assert len(realised) == 4 and len(realised[-1]["detail"]["k"]) == 28
        k_last = next(iter(st.checkpoints(1))).k  # uncalibrated: k to a whole-us pulse
        assert np.allclose(realised[-1]["detail"]["k"], k_last, rtol=2e-3)
        assert not np.array_equal(realised[-1]["detail"]["k"], k_last)
        grads = st.gradients(1)
        assert {g["epoch"] for g in grads} == {0, 3} and len(grads) == 2 * 28
        kinds = [e["kind"] for e in st.events(1)]
        assert kinds[0] == "connect" and kinds[-1] == "end"
        assert (st.run_dir(1) / "boards" / "1" / "state.json").exists()


def test_user_errors_exit_2(tmp_path, capsys):
    base = ["train", str(LI_MAO), "--task", "iris", "--no-store"]
    assert main([*base, "--port", "/dev/ttyACM0"]) == 2
    assert "does not train on boards" in capsys.readouterr().err
    assert main(["train", "--task", "iris"]) == 2
    assert "network file" in capsys.readouterr().err
    assert main(["train", str(LI_MAO), "--no-store"]) == 2
    assert "--task" in capsys.readouterr().err


def test_a_failing_run_is_marked_failed(tmp_path, capsys, monkeypatch):
    from insitu.trainers import insilico

    def boom(*args, **kwargs):
        raise RuntimeError("bench on fire")

    monkeypatch.setattr(insilico.Model, "batch_gradient", boom)
    db = tmp_path / "s.sqlite"
    argv = ["train", str(LI_MAO), "--task", "iris", "--epochs", "1", "--store", str(db)]
    try:
        main([*argv, "--quiet"])
    except RuntimeError:
        pass
    with RunStore(db) as st:
        assert st.run(1)["status"] == "failed"
        assert "bench on fire" in st.events(1)[-1]["detail"]["error"]
