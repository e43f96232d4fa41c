"""insitu.Session / insitu.open_run (host/insitu/notebook.py): the notebook API drives the
command line's own code and reads the run store back as DataFrames with units and bond names.
The whole tour is docs/tutorial.ipynb (tests/test_tutorial.py); here the edges."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("pandas", reason="pip install insitu[notebook] to run it")

import insitu  # noqa: E402
from insitu.cli.args import UsageError  # noqa: E402
from insitu.network.schema import NetworkError  # noqa: E402
from insitu.store import StoreError  # noqa: E402


def test_import_insitu_is_cheap_and_names_the_api() -> None:
    code = ("import sys, insitu; assert insitu.__version__; "
            "assert 'insitu.notebook' not in sys.modules and 'pandas' not in sys.modules; "
            "assert insitu.Session.__module__ == 'insitu.notebook'; print('ok')")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        insitu.nope  # noqa: B018


def test_a_recorded_run_reads_back_with_units_and_bond_names(tmp_path) -> None:
    store = tmp_path / "nb.sqlite"
    lab = insitu.Session("li-mao-2024", profile="ideal", store=store)
    run = lab.train("iris", method="insitu", epochs=1, batch=35, seed=3, gradient_epochs="")
    assert run.result.summary()["loadings"] > 0
    again = insitu.open_run(run.id, store=store)
    k = again.stiffness()
    net = lab.network
    assert list(k.columns) == ["epoch"] + [f"k {i}-{j} (N/m)" for i, j in net.bond_ids()]
    assert k.iloc[0, 1:].tolist() == pytest.approx(list(net.k_init))
    assert k.iloc[-1, 1:].tolist() == pytest.approx(list(run.result.k_final))
    ep = again.epochs()
    assert list(ep.index) == [0, 1] and "loadings" in ep.columns
    assert ep["test_accuracy"].iloc[-1] == pytest.approx(run.result.final.test_accuracy)
    st = again.steps()
    assert st.index.name == "step" and "max |dk| (N/m)" in st.columns
    assert "connect" in set(again.events()["kind"])
    from insitu.deploy.flash import firmware_sha256

    assert again.info["config"]["firmware_sha256"] == firmware_sha256()


def test_a_session_on_one_bus_trains_the_same_and_records_it(tmp_path) -> None:
    """Session(bus=True): the emulated boards share one emulated RS-485 bus; the run is the
    one on separate links (ideal boards: the same stiffness), its config says bus, and the
    per-step max |dk| a bus does not gather reads as missing."""
    store = tmp_path / "nb.sqlite"
    runs = []
    for bus in (False, True):
        lab = insitu.Session("li-mao-2024", profile="ideal", store=store, bus=bus)
        runs.append(lab.train("iris", method="insitu", epochs=1, batch=35, seed=3,
                              gradient_epochs=""))  # fmt: skip
    plain, bus = runs
    assert "one bus" in repr(lab)
    assert bus.result.k_final == pytest.approx(plain.result.k_final, rel=1e-9)
    info = insitu.open_run(bus.id, store=store).info
    assert info["config"].get("bus") is True
    assert insitu.open_run(bus.id, store=store).steps()["max |dk| (N/m)"].isna().all()


def test_refusals_are_the_commands_one_line_errors_and_write_nothing(tmp_path) -> None:
    store = tmp_path / "nb.sqlite"
    lab = insitu.Session("li-mao-2024", profile="ideal", store=store)
    with pytest.raises(UsageError, match="--lr: nan is not a finite number"):
        lab.train("iris", method="insitu", epochs=1, lr=float("nan"))
    with pytest.raises(UsageError, match="unrecognized arguments: --colour"):
        lab.train("iris", epochs=1, colour="red")
    assert not store.exists()
    with pytest.raises(NetworkError, match="not found"):
        insitu.Session(tmp_path / "none.toml")
    with pytest.raises(ValueError, match="calibrate them with train"):
        lab.calibrate()
    with pytest.raises(StoreError, match="no run store there"):
        insitu.open_run(7, store=store)
    assert not store.exists()
    unrecorded = lab.train("iris", method="insilico", epochs=1, record=False)
    assert unrecorded.id is None
    with pytest.raises(ValueError, match="not recorded"):
        unrecorded.epochs()
