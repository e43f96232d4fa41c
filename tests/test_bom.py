"""The kit's BOM total is computed from its own rows (hardware/bom.csv), and bom.md says it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from insitu.hardware import bom
from insitu.network.schema import load_network

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def net():
    return load_network(ROOT / "hardware" / "networks" / "li-mao-2024.toml")


def test_bom_md_is_generated_from_bom_csv(net):
    assert bom.main(["--check"]) == 0
    doc = (ROOT / "hardware" / "docs" / "bom.md").read_text()
    for build in ("servo", "coil"):
        lo, hi = bom.totals(bom.price(net, build))
        m = re.search(rf"^\| {build} \| (\d+) \| \$([\d,]+) \| \$([\d,]+) \|$", doc, re.M)
        assert m, f"no {build} total row in bom.md"
        assert int(m.group(2).replace(",", "")) == round(lo)
        assert int(m.group(3).replace(",", "")) == round(hi)
    assert "a few hundred dollars" not in doc.replace('is not "a few hundred dollars"', "")


def test_totals_are_the_rows_times_the_network_counts(net):
    rows = bom.load_rows()
    n = bom.counts(net, "servo")
    assert n["bond"] == 28 and n["board"] == 14 and n["force_axis"] == 16
    assert n["clamp_node"] == 5 and n["disp_axis"] == 10 and n["hub"] == 2 and n["pair"] == 8
    lo = sum(r.low * -(-r.qty * n[r.per] // 1) for r in rows if r.build in ("", "servo"))
    assert bom.totals(bom.price(net, "servo"))[0] == pytest.approx(lo)
    # the coil build swaps servos and leaves for coils and drives them: dearer
    assert bom.totals(bom.price(net, "coil"))[0] > bom.totals(bom.price(net, "servo"))[0]


def test_a_stale_doc_and_a_bad_row_are_refused(net, tmp_path, monkeypatch):
    doc = tmp_path / "bom.md"
    doc.write_text(bom.BOM_MD.read_text().replace("| servo | ", "| servo | 1"))
    monkeypatch.setattr(bom, "BOM_MD", doc)
    assert bom.main(["--check"]) == 1
    bad = tmp_path / "bom.csv"
    text = bom.BOM_CSV.read_text().replace(",board,1,,4,10,", ",boards,1,,4,10,", 1)
    bad.write_text(text)
    with pytest.raises(ValueError, match="per 'boards'"):
        bom.load_rows(bad)
