"""A run is what it says it is: a new run starts from k_init, whatever earlier runs left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import LI_MAO

from insitu.cli.main import main
from insitu.store import RunStore

TRAIN = ["train", str(LI_MAO), "--task", "behaviour", "--method", "insitu", "--epochs", "2",
         "--seed", "1", "--json", "--quiet"]  # fmt: skip


def _train(store: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main([*TRAIN, "--store", str(store)]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_new_store_in_the_same_place_starts_from_k_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Emulated boards keep their flash beside the store; a deleted and re-made store, or a
    second store in the same directory, numbers its runs from 1 again, and its boards must
    not boot the first run's trained state (they did: epoch 0 then scored the trained k)."""
    first = _train(tmp_path / "a.sqlite", capsys)
    with RunStore(tmp_path / "a.sqlite") as st:
        flash_a = st.run_dir(1)
    assert (flash_a / "boards").is_dir()
    for f in tmp_path.glob("a.sqlite*"):
        f.unlink()
    again = _train(tmp_path / "a.sqlite", capsys)
    other = _train(tmp_path / "b.sqlite", capsys)
    for run in (again, other):
        assert run["run"] == 1
        assert run["history"][0] == first["history"][0]  # epoch 0 scores k_init
        assert run["k_final"] == first["k_final"]
        assert run["measurements"] == first["measurements"]
    with RunStore(tmp_path / "a.sqlite") as st:
        assert st.run_dir(1) != flash_a
        connect = next(e for e in st.events(1) if e["kind"] == "connect")["detail"]["boards"]
        assert {b["boots"] for b in connect.values()} == {1}  # fresh boards, first boot


def test_a_stored_run_equals_the_same_run_unstored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Recording never perturbs the experiment: on realistic boards (noise, drift) the loop
    does the same to the boards whether a store listens or not — checkpoints, the gradient
    checks of epochs 0 and the last — so the numbers are equal bit for bit (they were not:
    the store's gradient checks drew extra noisy measurements: test loss 0.8845 vs 0.8599)."""
    args = ["train", str(LI_MAO), "--task", "iris", "--method", "insitu", "--epochs", "1",
            "--seed", "1", "--profile", "realistic", "--json", "--quiet"]  # fmt: skip
    assert main([*args, "--store", str(tmp_path / "s.sqlite")]) == 0
    stored = json.loads(capsys.readouterr().out)
    assert main([*args, "--no-store"]) == 0
    unstored = json.loads(capsys.readouterr().out)
    assert stored["k_final"] == unstored["k_final"]
    assert stored["history"] == unstored["history"]
    assert stored["gradient_cosine"] == unstored["gradient_cosine"]
    assert set(stored["gradient_cosine"]) == {"0", "1"}
    for key in ("loadings", "rig_seconds", "measurements"):
        assert stored[key] == unstored[key] > 0, key
