"""`insitu plot RUN`: the PNGs of a recorded run."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg

from insitu.cli.main import main
from insitu.store import RunStore

LI_MAO = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"


def _png(path: Path) -> None:
    img = mpimg.imread(path)
    assert img.shape[0] > 300 and img.shape[1] > 400
    assert img[..., :3].std() > 0.05  # not blank


def test_plot_insitu_run_writes_curves_network_and_gradients(tmp_path, capsys):
    db = str(tmp_path / "s.sqlite")
    argv = ["train", str(LI_MAO), "--task", "behaviour", "--epochs", "3", "--quiet"]
    argv += ["--method", "insitu", "--profile", "ideal", "--store", db]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["plot", "1", "--store", db, "-o", str(tmp_path / "png")]) == 0
    printed = capsys.readouterr().out.split()
    names = sorted(Path(p).name for p in printed)
    assert names == ["run1-curves.png", "run1-gradients.png", "run1-network.png"]
    for p in printed:
        _png(Path(p))


def test_plot_insilico_run_has_no_gradient_plot_and_defaults_to_the_run_dir(tmp_path, capsys):
    db = tmp_path / "s.sqlite"
    argv = ["train", str(LI_MAO), "--task", "regression", "--epochs", "2", "--quiet"]
    assert main([*argv, "--store", str(db)]) == 0
    capsys.readouterr()
    assert main(["plot", "1", "--store", str(db)]) == 0
    printed = [Path(p) for p in capsys.readouterr().out.split()]
    assert [p.name for p in printed] == ["run1-curves.png", "run1-network.png"]
    with RunStore(db) as st:
        assert all(p.parent == st.run_dir(1) for p in printed)
    for p in printed:
        _png(p)
