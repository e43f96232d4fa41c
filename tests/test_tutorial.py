"""docs/tutorial.ipynb, the notebook API's tutorial, executes from top to bottom (issue 17
item 3): a fresh kernel in an empty directory, emulated realistic boards, nbclient raising on
the first cell that fails. The committed notebook is the executed one (outputs shown on
GitHub); this test does not rewrite it (`make tutorial` does)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="pip install insitu[notebook] to run it")
nbclient = pytest.importorskip("nbclient", reason="pip install insitu[notebook] to run it")
pytest.importorskip("pandas", reason="pip install insitu[notebook] to run it")
pytest.importorskip("ipykernel", reason="pip install insitu[notebook] to run it")

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"


def _code_cells(nb: object) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]  # type: ignore[attr-defined]


def test_the_committed_tutorial_is_executed() -> None:
    nb = nbformat.read(TUTORIAL, as_version=4)
    cells = _code_cells(nb)
    assert cells and all(c.outputs for c in cells), "run `make tutorial` and commit the result"
    assert not [o for c in cells for o in c.outputs if o.output_type == "error"]


def test_tutorial_executes(tmp_path: Path) -> None:
    nb_path = tmp_path / "tutorial.ipynb"
    shutil.copy(TUTORIAL, nb_path)
    nb = nbformat.read(nb_path, as_version=4)
    for c in _code_cells(nb):
        c.outputs, c.execution_count = [], None
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    client.execute()  # CellExecutionError names the cell that failed
    text = "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for c in _code_cells(nb) for o in c.outputs
    )  # fmt: skip
    assert "'rig_seconds'" in text and "'superposed', 'finished'" in text
    assert "UsageError - insitu train: error: argument --lr: inf is not a finite number" in text
    assert any("image/png" in o.get("data", {}) for c in _code_cells(nb) for o in c.outputs)
    # the runs were recorded where the notebook ran, in the store it named
    assert (tmp_path / "runs" / "tutorial.sqlite").is_file()
