"""`insitu bench solver` on tiny sizes: the JSON keys and the files --out writes (no timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from insitu.cli.main import main

ROW_KEYS = {
    "nodes", "bonds", "free_dofs", "assemble_s", "factorise_s", "setup_s", "solve_s",
    "residual", "dense",
}  # fmt: skip
DENSE_KEYS = {"dense_factorise_s", "dense_solve_s", "dense_vs_sparse_rel_diff"}


def test_bench_solver_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "solver", "--quick", "--sizes", "16,49", "--dense-max", "20", "--json"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["benchmark"] == "solver"
    assert {"cpu", "cores", "numpy", "scipy", "python"} <= set(result["machine"])
    sizes = result["sizes"]
    assert [r["nodes"] for r in sizes] == [16, 49]
    for r in sizes:
        assert ROW_KEYS <= set(r)
        assert r["residual"] < 1e-10
    assert sizes[0]["dense"] == "measured" and DENSE_KEYS <= set(sizes[0])
    assert sizes[0]["dense_vs_sparse_rel_diff"] < 1e-10
    assert sizes[1]["dense"] == "skipped" and "--dense-max" in sizes[1]["dense_skipped"]
    assert json.loads((tmp_path / "solver.json").read_text()) == result
    assert (tmp_path / "solver.png").read_bytes()[:4] == b"\x89PNG"
    assert "| nodes |" in (tmp_path / "solver.md").read_text()
    assert "wrote" in err


def test_bench_solver_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "solver", "--sizes", "16"]) == 0
    out = capsys.readouterr().out
    assert "factorise" in out
    # every bench says the float width the firmware ran with (CPython, the MicroPython found)
    line = next(ln for ln in out.splitlines() if ln.startswith("firmware floats:"))
    assert "in-process nodes 64-bit" in line and "rp2/esp32 boards 32-bit" in line


def test_machine_info_probes_micropython_float_width() -> None:
    from insitu.bench import machine_info

    ff = machine_info()["firmware_float"]
    assert ff["in_process_bits"] == 64 and ff["boards_rp2_esp32_bits"] == 32
    # the unix port installed by `make setup` is a double-precision build
    assert ff["micropython"]["float_bits"] == 64 and ff["micropython"]["version"].count(".") == 2


@pytest.mark.parametrize("argv", [["bench", "solver", "--sizes", "a,b"], ["bench", "nosuch"]])
def test_bench_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse refuses an unknown benchmark
        status = exc.code
    assert status == 2
    assert capsys.readouterr().out == ""
