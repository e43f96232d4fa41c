"""`insitu bench firmware` on two bond counts: JSON keys for both interpreters, allocation-free
step, smallest heaps (no timings)."""

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
    compiled = result["compiled"]
    assert set(result["heap"]) == {"unix64", "wasm32"}
    for key, heap in result["heap"].items():
        assert [r["bonds"] for r in heap["probes"]] == [1, 2]
        assert heap["word_bits"] == (32 if key == "wasm32" else 64)
        assert heap["allocation_free"] is True
        assert heap["per_bond_bytes"] > 0 and heap["per_node_bytes"] > 0
        small = [r["smallest_heap_bytes"] for r in heap["probes"]]
        assert all(s is not None and s % 256 == 0 for s in small) and small[0] <= small[1]
        assert isinstance(heap["fits_64k"]["ok"], bool) and heap["fits_64k"]["bonds"] == 6
    # a 32-bit word halves most objects: the 64-bit port needs more heap for the same node
    assert result["heap"]["unix64"]["code_bytes"] > result["heap"]["wasm32"]["code_bytes"]
    assert compiled["mpy_bytes"] > 0 and any(
        f["file"].endswith("node.py") for f in compiled["files"]
    )
    assert (tmp_path / "firmware.png").read_bytes()[:4] == b"\x89PNG"
    assert "per bond" in (tmp_path / "firmware.md").read_text()
