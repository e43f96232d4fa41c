"""`insitu bench paper --quick` on tiny settings: JSON keys, files, seed cache (no timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from insitu.cli.main import main

ARGV = ["bench", "paper", "--quick", "--epochs", "1", "--behaviour-epochs", "1"]


def test_bench_paper_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ARGV, "--json", "--out", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["benchmark"] == "paper" and result["seeds"] == 1
    assert {"iris", "behaviour", "regression", "task_switch", "damage"} <= set(result)
    assert result["published"]["iris_test_accuracy"] == 0.9644
    iris = result["iris"]
    assert {"train_accuracy", "test_accuracy", "insilico_test_accuracy"} <= set(iris["summary"])
    assert isinstance(iris["meets_0_95"], bool)
    dmg = result["damage"]["per_seed"][0]
    assert len(dmg["pruned_bonds"]) == 2
    assert {"test_accuracy_after_damage", "test_accuracy_after_retraining"} <= set(dmg)
    sw = result["task_switch"]["per_seed"][0]
    assert {"stage2_regression_test_mse_mm2", "stage3_classification_test_accuracy"} <= set(sw)
    reach = result["regression"]["reach_m_per_n"]["k_min"]
    assert reach[1] < 0.016  # the published regression slope is out of reach
    assert {"u13_mm", "u14_mm", "ratio"} <= set(result["behaviour"]["per_seed"][0])
    assert (tmp_path / "paper.png").read_bytes()[:4] == b"\x89PNG"
    assert "| figure |" in (tmp_path / "paper.md").read_text()
    assert (tmp_path / "paper-seeds" / "iris-seed0.json").exists()
    # a second run with the same settings reuses the finished seed
    assert main([*ARGV, "--json", "--out", str(tmp_path)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["iris"]["per_seed"] == result["iris"]["per_seed"]


def test_pruned_network_is_rigid_and_smaller() -> None:
    from insitu.bench.paper import choose_pruned, network_path, pruned_network
    from insitu.network.schema import load_network

    net = load_network(network_path())
    drop = choose_pruned(net, 2, 0)
    dnet = pruned_network(net, drop)
    assert dnet.n_bonds == net.n_bonds - 2
    gone = {net.bond_ids()[b] for b in drop}
    assert not gone & set(dnet.bond_ids())
