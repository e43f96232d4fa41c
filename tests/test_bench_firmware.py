"""`insitu bench firmware` on two bond counts: JSON keys, allocation-free step (no timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from insitu.cli.main import main


def test_bench_firmware_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "firmware", "--quick", "--bonds", "1,2", "--json", "--out", str(tmp_path)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["benchmark"] == "firmware"
    heap, compiled = result["heap"], result["compiled"]
    assert [r["bonds"] for r in heap["probes"]] == [1, 2]
    assert heap["allocation_free"] is True
    assert heap["per_bond_bytes"] > 0 and heap["per_node_bytes"] > 0
    assert isinstance(heap["fits_64k"]["ok"], bool)
    assert compiled["mpy_bytes"] > 0 and any(
        f["file"].endswith("node.py") for f in compiled["files"]
    )
    assert (tmp_path / "firmware.png").read_bytes()[:4] == b"\x89PNG"
    assert "per bond" in (tmp_path / "firmware.md").read_text()
