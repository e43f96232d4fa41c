"""`insitu bench methods` on tiny settings: JSON keys, loadings per update (no timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from insitu.cli.main import main

ROW_KEYS = {
    "method", "loadings_per_update", "updates_to_target", "loadings_to_target", "final_loss",
    "loss_at_insitu_budget", "curve", "initial_loss", "target_loss", "wall_s_per_update",
}  # fmt: skip


def test_bench_methods_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "methods", "--quick", "--rows", "4", "--steps", "3", "--target", "0.9"]
    argv += ["--methods", "insitu,coupled,pat,spsa,fd", "--stop-at-target", ""]
    assert main([*argv, "--json", "--out", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["benchmark"] == "methods"
    small, lattice = result["methods"]
    assert small["network"] == "li-mao-2024" and small["bonds"] == 28
    assert lattice["bonds"] > 0
    for net in (small, lattice):
        rows = {r["method"]: r for r in net["rows"]}
        assert list(rows) == ["insitu", "coupled", "pat", "spsa", "fd"]
        for r in rows.values():
            assert ROW_KEYS <= set(r)
            assert r["updates"] == 3 and len(r["curve"]["loss"]) == 4
        # batch 1: in situ, coupled (classic nudge) and SPSA 2 loadings, PAT 1, FD bonds + 1
        assert rows["insitu"]["loadings_per_update"] == 2
        assert rows["coupled"]["loadings_per_update"] == 2
        assert rows["spsa"]["loadings_per_update"] == 2
        assert rows["pat"]["loadings_per_update"] == 1
        assert rows["fd"]["loadings_per_update_min_max"][1] == net["bonds"] + 1
        # rig time grows with the loadings: every update spends some, FD the most per update
        for r in rows.values():
            assert r["rig_s_per_update"] > 0 and len(r["curve"]["rig_s"]) == 4
            assert r["curve"]["rig_s"] == sorted(r["curve"]["rig_s"])
        assert rows["fd"]["rig_s_per_update"] > rows["insitu"]["rig_s_per_update"]
        assert {
            "fd_over_insitu_loadings_to_target",
            "fd_over_insitu_by_target",
            "target_loss",
        } <= set(net)
    assert (tmp_path / "methods.png").read_bytes()[:4] == b"\x89PNG"
    assert "| method |" in (tmp_path / "methods.md").read_text()
