"""`insitu bench calibration` on tiny settings (ideal boards, a fast-settling world, no Iris):
MicroPython boards on ptys driven only through their ports; keys and the gradient cosines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from insitu.cli.main import main


def test_bench_calibration_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "calibration", "--quick", "--profiles", "ideal", "--tau-scale", "0.05",
            "--iris-epochs", "0", "--json", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["benchmark"] == "calibration" and result["iris"] is None
    (row,) = result["rows"]
    assert row["profile"] == "ideal" and "error" not in row, row
    # ideal parts: right before and after; the nodes hold an id after calibration
    assert row["cosine_before"] > 0.99999 and row["cosine_after"] > 0.99999
    assert row["twin_after"] > 0.99999 and row["calibration_id"] > 0
    for ext in ("json", "png", "md"):
        assert (tmp_path / f"calibration.{ext}").stat().st_size > 0
