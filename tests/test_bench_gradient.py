"""`insitu bench gradient` on tiny settings: JSON keys and files (no timings asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from insitu.cli.main import main


def test_bench_gradient_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "gradient", "--quick", "--seeds", "1", "--factors", "0,1", "--loads", "5,100"]
    assert main([*argv, "--json", "--out", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["benchmark"] == "gradient"
    ns, ls = result["noise_sweep"], result["load_sweep"]
    builds = ["ideal", "realistic", "harsh", "ideal+coil", "realistic+coil", "harsh+coil"]
    assert [r["profile"] for r in ns["profiles"]] == builds
    assert [r["factor"] for r in ns["realistic_noise_factor"]] == [0.0, 1.0]
    for ideal in (ns["profiles"][0], ns["profiles"][3]):  # servo and coil builds
        assert ideal["cosine"]["min"] > 0.999999 and ideal["rel_err"]["max"] < 1e-6
    for r in ns["profiles"] + ns["realistic_noise_factor"]:
        assert {"cosine", "rel_err"} <= set(r) and {"mean", "std", "min", "max"} <= set(r["cosine"])
    small, large = ls["points"]
    assert small["load_g"] == 5.0 and large["load_g"] == 100.0
    for p in (small, large):
        assert {"linear_adjoint", "incremental_adjoint", "max_strain"} <= set(p["truth"])
    # the incremental adjoint follows the nonlinear model; the linear one falls behind with load
    assert small["rig"]["incremental_adjoint"]["rel_err"]["mean"] < 1e-2
    assert large["truth"]["incremental_adjoint"]["rel_err"] < 1e-2
    assert large["truth"]["linear_adjoint"]["rel_err"] > 0.1
    # ideal parts read float counts with no rail (docs/emulator.md): even at 100 g nothing
    # saturates, and the rig's incremental adjoint follows the nonlinear model as the core's does
    assert large["rig"]["saturated_channels"] == 0
    assert large["rig"]["incremental_adjoint"]["rel_err"]["mean"] < 1e-2
    assert (tmp_path / "gradient.png").read_bytes()[:4] == b"\x89PNG"
    assert "| load (g) |" in (tmp_path / "gradient.md").read_text()
