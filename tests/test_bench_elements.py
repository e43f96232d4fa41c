"""`insitu bench elements` on tiny settings: keys, and the verdicts (counts, not times)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from insitu.cli.main import main


def test_bench_elements_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "elements", "--quick", "--bonds", "3", "--json", "--out", str(tmp_path)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["benchmark"] == "elements" and {"cpu", "python"} <= set(result["machine"])
    assert [r["profile"] for r in result["rows"]] == ["ideal", "realistic", "harsh", "ideal+coil",
                                                     "realistic+coil", "harsh+coil"]
    for r in result["rows"]:
        assert r["healthy"]["false_alarms"] == [] and r["healthy"]["ok"] == 28
        assert r["healthy"]["min_margin"] > 1.0  # the check tells them apart
        assert r["stuck_scan"] == [{"bond": 3, "verdict": "stuck", "margin": r["max_stuck_margin"]}]
        assert r["max_stuck_margin"] < 1.0
    for ext in ("json", "png", "md"):
        assert (tmp_path / f"elements.{ext}").stat().st_size > 0
    assert main(["bench", "elements", "--bonds", "40"]) == 2
    assert "not [40]" in capsys.readouterr().err
