"""Settle until still (issue 14 item 3): each node starts sampling once its gauges' 200 ms
window means have stopped moving (``measure calm=C``, insitu_node/node.py ``Node._still``),
10 tau being the cap. The firmware cases (tests/firmware/case_node.py) pin the node's rule on
both interpreters; here the rig: less rig time per loading, the same gradient within noise,
and `insitu train --calm` recorded with the run."""

from __future__ import annotations

import json

import pytest

from insitu.cli.main import main
from insitu.store import RunStore


def test_bench_settle_quick(capsys) -> None:
    """Emulated rig time (the boards' clock), deterministic: calm 10000 ends every realistic
    loading sooner than 10 tau and leaves the gradient where 10 tau leaves it; a calm of 1
    count (never still before the cap) costs exactly the fixed wait."""
    assert main(["bench", "settle", "--quick", "--json", "--seeds", "2", "--calm", "1,10000"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {(r["profile"], r["calm"]): r for r in out["rows"]}
    assert set(rows) == {(p, c) for p in ("realistic", "harsh") for c in (0, 1, 10000)}
    for p in ("realistic", "harsh"):
        fixed, one, calm = rows[p, 0], rows[p, 1], rows[p, 10000]
        assert one["rig_s_per_loading"]["mean"] == fixed["rig_s_per_loading"]["mean"]
        assert calm["rig_s_per_loading"]["mean"] < 0.95 * fixed["rig_s_per_loading"]["mean"]
        assert calm["cosine"]["mean"] == pytest.approx(fixed["cosine"]["mean"], abs=1e-3)
        # harsh boards' 10 SPS windows with dropped words: no longer still at once
        assert one["cosine"]["mean"] == pytest.approx(fixed["cosine"]["mean"], abs=1e-4)


def test_train_calm_is_recorded_and_saves_rig_time(tmp_path, capsys) -> None:
    store = tmp_path / "runs.sqlite"
    args = ["train", "li-mao-2024", "--task", "iris", "--method", "superposed", "--epochs", "1",
            "--batch", "105", "--seed", "2", "--profile", "realistic", "--quiet", "--json",
            "--eval-every", "1", "--gradient-epochs", ""]  # fmt: skip
    assert main([*args, "--no-store"]) == 0
    fixed = json.loads(capsys.readouterr().out)
    assert main([*args, "--store", str(store), "--calm", "10000"]) == 0
    calm = json.loads(capsys.readouterr().out)
    assert calm["loadings"] == fixed["loadings"]
    assert calm["rig_seconds"] < 0.9 * fixed["rig_seconds"]
    with RunStore(store) as s:
        conf = s.run(calm["run"])["config"]
    assert conf["calm"] == 10000


def test_calibration_is_reported_beside_the_methods_rig_time(tmp_path, capsys) -> None:
    """--calibrate: the calibration's rig seconds and loadings are reported on their own (JSON
    `calibration`, store event `calibrated`); the method's `loadings` and `rig_seconds` count
    the training alone, as without --calibrate (they used to disagree: loadings included the
    calibration's 157, rig_seconds did not)."""
    args = ["train", "li-mao-2024", "--task", "iris", "--method", "superposed", "--epochs", "1",
            "--batch", "105", "--seed", "2", "--profile", "realistic", "--quiet", "--json",
            "--gradient-epochs", ""]  # fmt: skip
    assert main([*args, "--no-store"]) == 0
    plain = json.loads(capsys.readouterr().out)
    store = tmp_path / "runs.sqlite"
    assert main([*args, "--calibrate", "--store", str(store)]) == 0
    cal = json.loads(capsys.readouterr().out)
    assert "calibration" not in plain
    assert cal["calibration"]["loadings"] > 100 and cal["calibration"]["rig_seconds"] > 60
    assert cal["loadings"] == plain["loadings"] and cal["rig_seconds"] == plain["rig_seconds"]
    with RunStore(store) as s:
        [ev] = [e for e in s.events(cal["run"]) if e["kind"] == "calibrated"]
    assert ev["detail"] == cal["calibration"]
