"""`insitu bench rigtime --quick --json`: every rig method's accuracy curve against the boards'
clock (keys and monotone clocks; no timing, no accuracy asserted)."""

from __future__ import annotations

import json

import numpy as np

from insitu.bench.rigtime import RUNS
from insitu.cli.main import main


def test_bench_rigtime_quick(capsys) -> None:
    assert main(["bench", "rigtime", "--quick", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in out["rows"]] == [label for label, *_ in RUNS]
    for r in out["rows"]:
        c = r["curve"]
        assert len(c["rig_hours"]) == len(c["accuracy"]) == len(c["loadings"]) == r["epochs"] + 1
        assert np.all(np.diff(c["rig_hours"]) > 0) and np.all(np.diff(c["loadings"]) > 0)
        assert 0.0 <= r["accuracy"] <= 1.0
    by = {r["method"]: r for r in out["rows"]}
    # per epoch, FD costs more rig time than in situ, and in situ more than superposed
    per_epoch = {m: by[m]["final_rig_hours"] / by[m]["epochs"] for m in by}
    assert per_epoch["fd"] > per_epoch["insitu"] > per_epoch["superposed, batch 16"]
