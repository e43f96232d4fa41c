"""The method protocol (issue 15, item 1): options as dataclasses, flags built from them.

Each method's options reach it from the command line (a spy on the method's step records the
Options it was given and stops the run before any loading); bad values are one-line errors
that name the flag, exit status 2.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from insitu.cli.main import main
from insitu.network.schema import load_network
from insitu.store import RunStore
from insitu.tasks import make_task
from insitu.trainers import METHODS, method, method_module
from insitu.trainers.common import TrainConfig
from insitu.trainers.protocol import Method, OptionError, Options

LI_MAO = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"
BASE = ["train", str(LI_MAO), "--task", "behaviour", "--epochs", "1", "--profile", "ideal"]


class _Seen(Exception):
    """Raised by the spy once it has seen the options: no training happens."""


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """Replace method ``name``'s plan with one that records its Options."""
    seen: list[Any] = []
    m = method(name)

    def record(*args: Any) -> Any:
        seen.append(args[-1])  # plan(net, task, config, opts)
        raise _Seen

    spied = replace(m, plan=record)
    monkeypatch.setattr(method_module(name), "METHOD", spied)
    return seen


def _options_from(monkeypatch: pytest.MonkeyPatch, name: str, *flags: str) -> Any:
    seen = _spy(monkeypatch, name)
    with pytest.raises(_Seen):
        main([*BASE, "--method", name, "--no-store", "--quiet", *flags])
    assert len(seen) == 1
    return seen[0]


def test_every_method_is_a_method_record() -> None:
    for name in METHODS:
        m = method(name)
        assert isinstance(m, Method) and m.name == name
        assert issubclass(m.options, Options)
        assert m.plan is not None
        m.options()  # every option has a default


def test_each_method_says_where_its_state_lives_as_its_plan_does() -> None:
    """Method.holds (what a resume matches boards by) is its Plan's holds."""
    from insitu.network.schema import load_network
    from insitu.tasks import make_task
    from insitu.trainers.common import TrainConfig

    net = load_network("li-mao-2024")
    task = make_task("iris", net, 0)
    for name in METHODS:
        m = method(name)
        plan = m.plan(net, task, TrainConfig(epochs=1), m.options())
        assert plan.holds == m.holds, name


def test_help_shows_each_methods_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--eta", "--nudge", "--symmetric", "--fd-step", "--central", "--spsa-c", "--twin"):
        assert flag in out
    for group in ("--method coupled:", "--method fd:", "--method spsa:", "--method pat:"):
        assert group in out
    text = " ".join(out.split())
    assert "(> 0; <= 10; default 0.1)" in text  # eta: bounds and default from the dataclass
    assert "{target,matched}" in text and "(default target)" in text


@pytest.mark.parametrize(
    ("name", "flags", "expected"),
    [
        ("coupled", ["--eta", "0.01"], {"eta": 0.01, "nudge": "target", "symmetric": False}),
        ("coupled", ["--nudge", "matched"], {"eta": 0.1, "nudge": "matched"}),
        ("coupled", ["--symmetric"], {"symmetric": True}),
        ("fd", ["--fd-step", "0.275"], {"h": 0.275, "central": False}),
        ("fd", ["--central"], {"h": 1.0, "central": True}),
        ("spsa", ["--spsa-c", "2.5"], {"c": 2.5}),
        ("coupled", [], {"eta": 0.1, "nudge": "target", "symmetric": False}),
        ("insitu", [], {}),
    ],
)
def test_a_flag_reaches_its_method(
    monkeypatch: pytest.MonkeyPatch, name: str, flags: list[str], expected: dict[str, Any]
) -> None:
    opts = _options_from(monkeypatch, name, *flags)
    assert isinstance(opts, method(name).options)
    for key, value in expected.items():
        assert getattr(opts, key) == value


def test_twin_flag_loads_the_network_the_host_models(monkeypatch: pytest.MonkeyPatch) -> None:
    opts = _options_from(monkeypatch, "pat", "--twin", str(LI_MAO))
    assert opts.twin is not None and opts.twin.n_bonds == load_network(LI_MAO).n_bonds
    assert opts.record()["twin"] == opts.twin.source
    assert _options_from(monkeypatch, "pat").twin is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--method", "coupled", "--eta", "0"], "--eta must be > 0, got 0.0"),
        (["--method", "coupled", "--eta", "-1"], "--eta must be > 0, got -1.0"),
        (["--method", "fd", "--fd-step", "-0.5"], "--fd-step must be > 0, got -0.5"),
        (["--method", "spsa", "--spsa-c", "0"], "--spsa-c must be > 0, got 0.0"),
        (["--method", "insitu", "--eta", "0.1"], "--eta goes with --method coupled"),
        (["--method", "insilico", "--central"], "--central goes with --method fd"),
    ],
)
def test_a_bad_option_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main([*BASE, "--no-store", "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_missing_twin_file_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--no-store", "--method", "pat", "--twin", "no/such.toml"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_options_as_keywords_are_checked_by_the_dataclass() -> None:
    coupled = method("coupled")
    assert coupled.make_options(None, {"eta": 0.5}).eta == 0.5
    with pytest.raises(OptionError, match="eta must be > 0"):
        coupled.make_options(None, {"eta": 0.0})
    with pytest.raises(OptionError, match="nudge must be one of target, matched"):
        coupled.make_options(None, {"nudge": "sideways"})
    with pytest.raises(TypeError, match="no option 'h'"):
        coupled.make_options(None, {"h": 1.0})  # a misspelt or foreign option fails loudly
    net = load_network(LI_MAO)
    task = make_task("behaviour", net, 0)
    with pytest.raises(TypeError, match="trains on boards"):
        coupled.train(net, task, TrainConfig(epochs=1))  # no method builds a rig


def test_the_run_records_its_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.sqlite"
    argv = [*BASE, "--method", "spsa", "--spsa-c", "0.5", "--store", str(db), "--quiet"]
    assert main([*argv, "--json", "--eval-every", "5"]) == 0
    small = json.loads(capsys.readouterr().out)
    with RunStore(db) as st:
        assert st.run(1)["config"]["options"] == {"c": 0.5}
    assert main([*BASE, "--method", "spsa", "--no-store", "--quiet", "--json"]) == 0
    default = json.loads(capsys.readouterr().out)  # c = 1: a different step, other numbers
    assert small["k_final"] != default["k_final"]
    assert main(["train", "--resume", "1", "--store", str(db), "--spsa-c", "1"]) == 2
    assert "drop --spsa-c" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_reports_loadings_and_rig_seconds(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`insitu train --json`: the loadings and the rig time (the boards' own clock) of every
    method; in silico spends neither."""
    args = ["train", "li-mao-2024", "--task", "behaviour", "--method", name, "--epochs", "1",
            "--profile", "realistic", "--no-store", "--quiet", "--json"]  # fmt: skip
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    if name == "insilico":
        assert out["loadings"] == 0 and out["rig_seconds"] == 0.0
    else:  # a realistic loading settles 10 tau = 2 s on li-mao
        assert out["loadings"] >= 2 and out["rig_seconds"] >= 2.0 * out["loadings"]
    print(f"\n{name}: {out['loadings']} loadings, {out['rig_seconds']:.1f} rig s")
