"""`insitu bench superposed --quick --json`: its rows and what they must say (no timing)."""

from __future__ import annotations

import json

from insitu.cli.main import main


def test_bench_superposed_quick(capsys, tmp_path) -> None:
    assert main(["bench", "superposed", "--quick", "--json", "--out", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {(r["profile"], r["batch"], r["mode"]): r for r in out["rows"]}
    for batch in (16, 105):
        ideal = rows[("ideal", batch, "superposed")]
        assert ideal["loadings"] == 9 and ideal["cosine"] > 1 - 1e-12  # exact: 2 x 4 ports + 1
        assert rows[("ideal", batch, "per-sample")]["loadings"] == 2 * batch
    assert rows[("realistic", 16, "superposed")]["cosine"] >= 0.999
    methods = {t["method"]: t for t in out["training"]}
    assert methods["superposed"]["train_loadings"] < methods["insitu"]["train_loadings"]
    assert methods["superposed"]["rig_hours"] < methods["insitu"]["rig_hours"]
    for name in ("superposed.json", "superposed.md", "superposed.png"):
        assert (tmp_path / name).is_file()
