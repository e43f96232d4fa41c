"""Issue #12 item 3: a saturated gauge is reported, never read as 0 silently.

The firmware judges saturation (health.py, sampling.py) on integer channels only: an HX711
clips at its 24-bit rail, an ideal emulated sensor's float counts have none. A measurement with
any sample on the rail is saturated (its mean would be biased); the node reports a `sat` fault
event and freezes the bond; `insitu gradcheck` lists such bonds under `saturated` and training
logs the event in the run store and names the frozen bond.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from insitu.cli.main import main
from insitu.emulator.hardware import HX711_MAX, HX711_MIN
from insitu.network.schema import Network, load_network
from insitu.rig.lab import emulated_rig
from insitu.store.db import RunStore
from insitu.store.recorder import Recorder
from insitu.tasks import make_task
from insitu.trainers import insitu
from insitu.trainers.common import TrainConfig
from insitu_node.health import OK, SAT, Health
from insitu_node.sampling import Channels

LI_MAO = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"
# the command: 0.5 N at node 11 stretches six bonds beyond the 0.977 mm full scale
OVERLOAD = ["--load", "11:0,-0.5", "--adjoint", "13:0,0.01", "--adjoint", "14:0,-0.01"]
OVERLOADED = [[1, 6], [5, 9], [6, 10], [7, 11], [8, 11], [9, 12]]


@pytest.fixture(scope="module")
def net() -> Network:
    return load_network(LI_MAO)


class Fixed:
    """A sensor that returns a given sequence of raw counts, one per poll."""

    def __init__(self, values) -> None:
        self.values = list(values)

    def poll(self):
        return self.values.pop(0)


def _measure(typecode: str, values) -> tuple[Channels, Health, int]:
    ch = Channels(1, typecode)
    hl = Health(1)
    ch.start()
    sensor = [Fixed(values)]
    for _ in values:
        ch.poll(sensor, len(values))
    code = hl.judge(0, ch.cnt[0], ch.mean(0), ch.hi[0] - ch.lo[0])
    return ch, hl, code


def test_one_sample_on_the_rail_saturates_an_integer_measurement():
    # 3 of 4 samples below the rail: the mean (8388000) looks healthy but is clipped low
    ch, _, code = _measure("i", [8387800, 8387900, 8388000, HX711_MAX])
    assert code == SAT and ch.mean(0) == HX711_MAX and ch.sat[0] == 1
    _, _, code = _measure("i", [HX711_MIN, -8388000, -8388100, -8388200])
    assert code == SAT
    _, _, code = _measure("i", [8387800, 8387900, 8388000, 8388100])
    assert code == OK


def test_an_ideal_float_channel_has_no_rail():
    # beyond 2^23 counts an ideal (float) sensor is still exact: not saturated
    ch, _, code = _measure("d", [9.5e6, 9.5e6])
    assert code == OK and ch.mean(0) == 9.5e6 and ch.sat[0] == 0
    # an injected fault that pins the output to the rail still reads as saturated
    _, _, code = _measure("d", [float(HX711_MAX)] * 3)
    assert code == SAT


def test_gradcheck_ideal_overload_is_exact(capsys):
    """The issue's command: before the fix, cosine 0.68 and six bonds silently 0."""
    assert main(["gradcheck", str(LI_MAO), *OVERLOAD, "--profile", "ideal", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["saturated"] == []
    assert out["cosine"] > 1 - 1e-9


def test_gradcheck_reports_saturated_bonds(capsys):
    args = ["gradcheck", str(LI_MAO), *OVERLOAD, "--profile", "realistic"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["saturated"] == OVERLOADED
    zero = {(b["i"], b["j"]) for b in out["bonds"] if b["insitu"] == 0.0}
    assert {tuple(b) for b in OVERLOADED} <= zero  # read as 0 ... and said so
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "saturated gauges" in text and "1-6, 5-9, 6-10, 7-11, 8-11, 9-12" in text


def test_a_load_beyond_the_actuator_is_one_line_exit_2(capsys):
    """A load the board's actuator cannot make is refused by the board; the command says which
    board refused what, in one line, exit 2 (was a RigError traceback)."""
    args = ["gradcheck", str(LI_MAO), "--load", "11:0,-3", "--adjoint", "13:0,0.01"]
    assert main([*args, "--profile", "realistic", "--json"]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err == (
        "insitu gradcheck: error: board 11 (node 11) refused force: "
        "f: beyond actuator range 0.5 N\n"
    )


def test_gradcheck_within_range_reports_nothing(capsys):
    """The issue's 5 g loading stays within full scale on the realistic bench."""
    args = ["gradcheck", str(LI_MAO), "--profile", "realistic", "--json"]
    for n in (10, 12, 13, 14):
        args += ["--load", f"{n}:0,-0.049"]
    args += ["--adjoint", "8:0.01,0", "--adjoint", "2:-0.01,0"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["saturated"] == [] and out["cosine"] > 0.999


def test_training_logs_saturation_and_freezes_the_bond(net, tmp_path):
    """Iris loads x8 (up to 40 g) overload some gauges on a realistic bench: each is a `sat` board
    event in the run store, its bond is frozen at its initial k and the result names it."""
    t = make_task("iris", net, 0)
    task = dataclasses.replace(t, inputs=8.0 * t.inputs, train=t.train[:8], test=t.test[:4])
    _, rig = emulated_rig(net, "realistic", seed=0)
    cfg = TrainConfig(epochs=1, batch=8, seed=0, lr=3.0)
    with RunStore(tmp_path / "s.sqlite") as store:
        run = store.create_run("insitu", task.name, 0, {}, net, "realistic")
        rec = Recorder(store, run, rig=rig)
        r = insitu.train(net, task, cfg, callbacks=[rec], rig=rig, profile="realistic")
        events = [e["detail"] for e in store.events(run) if e["kind"] == "board"]
    sat = {tuple(e["bond"]) for e in events if e.get("ev") == "fault" and e["kind"] == "sat"}
    assert sat, "no gauge saturated: raise the load"
    held = {tuple(net.bond_ids()[bd.bonds[s]]) for bd in net.boards for s in
            rig.held.get(str(bd.id), [])}  # fmt: skip
    assert sat <= held
    ids = net.bond_ids()
    for b, pair in enumerate(ids):
        if pair in sat:
            assert r.k_final[b] == r.k_init[b]
            assert f"bond {pair[0]}-{pair[1]} (#{b}) frozen" in "\n".join(r.faults)
    assert "sensor sat" in "\n".join(r.faults)
    assert np.count_nonzero(r.k_final != r.k_init) > 0  # the other bonds learned
