"""`insitu bench host` on tiny settings: JSON keys, constant host messages (no timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from insitu.cli.main import main

ROW_KEYS = {
    "link", "nodes", "bonds", "step_s", "messages_per_step", "lines_sent_per_step",
    "replies_per_step", "bytes_out_per_step", "bytes_in_per_step", "wire_s_at_115200",
}  # fmt: skip


def test_bench_host_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "host", "--sizes", "10,30", "--pty-sizes", "10", "--steps", "1"]
    assert main([*argv, "--batch", "2", "--json", "--out", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["benchmark"] == "host"
    rows = result["scaling"]
    assert [r["link"] for r in rows] == ["inprocess", "inprocess", "pty@115200"]
    for r in rows:
        assert ROW_KEYS <= set(r)
        assert r["retries"] == 0 and r["loadings_per_step"] == 4
    small, large, pty = rows
    assert large["bonds"] > small["bonds"]
    # host messages per step do not depend on the number of bonds or on the link
    assert small["messages_per_step"] == large["messages_per_step"] == pty["messages_per_step"]
    assert (tmp_path / "host.png").read_bytes()[:4] == b"\x89PNG"
    assert "| link |" in (tmp_path / "host.md").read_text()
