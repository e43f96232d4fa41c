"""`insitu view`: the run store as JSON and as a page, live in a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from insitu.cli.main import main
from insitu.store import RunStore
from insitu.view import run_document
from insitu.view.server import ViewServer

LI_MAO = "hardware/networks/li-mao-2024.toml"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    """A store with one finished in-situ Iris run on ideal boards (2 epochs)."""
    store = tmp_path_factory.mktemp("view") / "runs.sqlite"
    argv = ["train", str(repo_root / LI_MAO), "--task", "iris", "--method", "insitu",
            "--profile", "ideal", "--epochs", "2", "--seed", "0", "--store", str(store),
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    return store


def test_run_document_has_what_the_page_draws(recorded: Path) -> None:
    with RunStore(recorded) as store:
        doc = run_document(store, 1)
    assert doc["run"]["status"] == "finished" and doc["run"]["epochs_planned"] == 2
    net = doc["network"]
    assert len(net["nodes"]) == 14 and len(net["bonds"]) == 28 == len(doc["k"])
    assert {p["node"] for p in net["inputs"]} == {10, 12, 13, 14}  # Iris: DESIGN.md section 3
    assert {p["node"] for p in net["outputs"]} == {2, 3, 8}
    assert [e["epoch"] for e in doc["epochs"]] == [0, 1, 2]
    assert doc["reference"] == {"train_accuracy": 0.9495, "test_accuracy": 0.9644}
    assert doc["snapshot"]["k"] == doc["k"]
    # the twin's displacement under 5 g at the inputs: supports still, the rest sagging
    u = doc["displacement"]
    fixed = [i for i, n in enumerate(net["nodes"]) if n["fixed"]]
    assert all(u[i] == [0.0, 0.0] for i in fixed)
    assert min(v[1] for v in u) < -1e-4
    g = doc["gradient"]
    assert g is not None and g["cosine"] > 0.999999  # ideal boards: the exact gradient
    assert [b["board"] for b in doc["health"]["boards"]][:3] == ["1", "2", "3"]
    assert all(b["faults"] == [] for b in doc["health"]["boards"])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_server_serves_the_page_and_the_record(recorded: Path) -> None:
    with ViewServer(recorded, port=0) as srv:
        status, body = _get(srv.url)
        assert status == 200 and b"<title>insitu view</title>" in body
        assert b"http://" not in body.replace(b"http://www.w3.org/2000/svg", b"")  # offline
        status, body = _get(srv.url + "api/runs")
        assert status == 200 and [r["id"] for r in json.loads(body)] == [1]
        status, body = _get(srv.url + "api/run/1")
        assert status == 200 and json.loads(body)["run"]["id"] == 1
        assert json.loads(_get(srv.url + "api/live")[1])["run"]["id"] == 1
        status, body = _get(srv.url + "api/run/99")
        assert status == 404 and "no run 99" in json.loads(body)["error"]


@pytest.mark.parametrize(
    "argv, says",
    [
        (["view", "--store", "{tmp}/none.sqlite"], "no run store at"),
        (["view", "--store", "{store}", "7"], "no run 7"),
        (["view", "--store", "{store}", "--port", "70000"], "not a port number"),
        (["view", "--store", "{store}", "1", "--live"], "a RUN or --live, not both"),
    ],
)
def test_view_refuses_bad_arguments(
    argv: list[str], says: str, recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = [a.format(tmp=tmp_path, store=recorded) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]


def _dump(url: str, tmp: Path, shot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (a real headless Chromium)."""
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={tmp / 'chromium'}", "--virtual-time-budget=4000",
           "--window-size=1400,1000"]  # fmt: skip
    if shot is not None:
        r = subprocess.run([*cmd, f"--screenshot={shot}", url], capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([*cmd, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def _epoch(dom: str) -> int:
    m = re.search(r'id="epoch" data-epoch="(\d+)"', dom)
    assert m, dom[:3000]
    return int(m.group(1))


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian's package chromium; .ci/run installs it): "
    "the live page was not tested in a browser",
)
def test_live_page_follows_a_training_run_in_chromium(tmp_path: Path, repo_root: Path) -> None:
    """A run trains in another process; the page, rendered by Chromium, shows its epochs
    advancing (no timing assumed: the dumps are repeated until the epoch moves on)."""
    store = tmp_path / "live.sqlite"
    train = subprocess.Popen(
        [sys.executable, "-m", "insitu.cli.main", "train", str(repo_root / LI_MAO),
         "--task", "iris", "--method", "insitu", "--profile", "ideal", "--epochs", "400",
         "--seed", "1", "--store", str(store), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:  # the run exists and has scored an epoch
            assert train.poll() is None, train.stderr.read() if train.stderr else ""
            if store.exists():
                with RunStore(store) as s:
                    if s.runs() and s.epochs(1):
                        break
            assert time.monotonic() < deadline, "the training run recorded no epoch"
            time.sleep(0.5)
        with ViewServer(store, port=0, live=True) as srv:
            shot = tmp_path / "view.png"
            first = _dump(srv.url, tmp_path, shot)
            assert 'data-run="1"' in first and "running" in first
            assert first.count('class="bond"') == 28 and 'id="health-table"' in first
            assert shot.read_bytes()[:4] == b"\x89PNG"
            e0 = _epoch(first)
            while True:
                later = _dump(srv.url, tmp_path)
                if _epoch(later) > e0:
                    break
                assert time.monotonic() < deadline, f"the page stayed at epoch {e0}"
                time.sleep(1.0)
    finally:
        train.kill()
        train.wait(timeout=60)
