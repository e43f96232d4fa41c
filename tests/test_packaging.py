"""insitu installs without a checkout: build the wheel from the repo, check what it carries,
install it into a fresh venv outside the checkout and run the commands a lab runs first.

The wheel is built with ``pip wheel --no-deps`` (build isolation: pip fetches setuptools from
the package index, as any user's pip does) from a copy of the source tree, so a stale
``build/`` in the checkout cannot leak into it. The fresh venv gets the wheel alone
(``--no-deps --no-index``); its dependencies (numpy, scipy, ...) are this interpreter's, made
visible with a ``.pth`` line after the wheel is installed, the equivalent of
``--system-site-packages`` for a venv-made venv, so no dependency is downloaded. The commands
then run from a temporary directory with no PYTHONPATH: ``insitu`` is the wheel's, and every
shipped file it finds comes from the wheel (asserted). Times are printed with ``-s``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import site
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from insitu.cli.main import main
from insitu.deploy.discovery import identify_port
from insitu.deploy.flash import firmware_files
from insitu.resources import kit, source_checkout
from insitu_node import VERSION

ROOT = source_checkout()
TIMES: dict[str, float] = {}
# what a wheel is built from: the project metadata and the three trees it ships
SOURCES = ("pyproject.toml", "setup.py", "README.md", "host", "firmware", "hardware")

pytestmark = pytest.mark.skipif(ROOT is None, reason="needs the source checkout to build from")


def _timed(what: str, cmd: list[str], timeout: float, **kw: object) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
    TIMES[what] = time.monotonic() - t0
    assert r.returncode == 0, f"{what}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


def test_bundled_networks_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command reads NETWORK through load_network: a bare name that is not a file is
    the bundled network; an unknown name is one line naming it and the bundled names."""
    from insitu.network.schema import NetworkError, load_network
    from insitu.resources import network_names, networks_dir

    assert "li-mao-2024" in network_names()
    path = networks_dir() / "li-mao-2024.toml"
    for arg in ("li-mao-2024", "li-mao-2024.toml"):
        net = load_network(arg)
        assert net.source == str(path) and net.text == load_network(path).text
    monkeypatch.chdir(tmp_path)  # a file of that name in the working directory wins
    (tmp_path / "li-mao-2024").write_text(path.read_text().replace("li-mao-2024", "mine", 1))
    assert load_network("li-mao-2024").name == "mine"
    with pytest.raises(NetworkError, match=r"^nope: file: not found, and not a bundled network "
                       r"name \(li-mao-2024"):  # fmt: skip
        load_network("nope")
    with pytest.raises(NetworkError, match=r"^sub/nope.toml: file: not found$"):
        load_network("sub/nope.toml")  # a path, not a name
    capsys.readouterr()
    assert main(["solve", "no-such-network"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "no-such-network" in err and "li-mao-2024" in err
    assert main(["solve", "li-mao-2024.toml"]) == 0
    assert capsys.readouterr().out.startswith("li-mao-2024: 14 nodes, 28 bonds")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert ROOT is not None
    src = tmp_path_factory.mktemp("src")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=skip)
        else:
            shutil.copy2(p, src / name)
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    _timed("pip wheel (build isolation)", cmd, timeout=300)
    (whl,) = out.glob("insitu-*.whl")
    return whl


def test_the_wheel_carries_firmware_networks_pin_maps_and_iris(wheel: Path) -> None:
    assert ROOT is not None
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())

        def same(member: str, path: Path) -> None:
            assert member in names, f"{member} is not in {wheel.name}"
            assert z.read(member) == path.read_bytes(), f"{member} differs from {path}"

        fw = ROOT / "firmware"
        rels = firmware_files(fw)
        assert "main.py" in rels and "insitu_node/node.py" in rels
        for rel in [*rels, "manifest.py"]:  # every file a board gets, byte for byte
            same(f"insitu/_kit/firmware/{rel}", fw / rel)
        nets = sorted((ROOT / "hardware" / "networks").glob("*.toml"))
        boards = sorted((ROOT / "hardware" / "boards").glob("*.toml"))
        assert nets and {p.stem for p in boards} >= {"pico", "pico2", "esp32"}
        for p in nets:
            same(f"insitu/_kit/networks/{p.name}", p)
        for p in boards:
            same(f"insitu/_kit/boards/{p.name}", p)
        same("insitu/data/iris.csv", ROOT / "host" / "insitu" / "data" / "iris.csv")
        # the importable packages, as before: host and firmware (the host imports its codec)
        for p in (ROOT / "host" / "insitu").rglob("*.py"):
            if "__pycache__" not in p.parts:
                same(p.relative_to(ROOT / "host").as_posix(), p)
        for p in (fw / "insitu_node").rglob("*.py"):
            if "__pycache__" not in p.parts:
                same(p.relative_to(fw).as_posix(), p)
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        top = z.read(next(n for n in names if n.endswith(".dist-info/top_level.txt")))
        assert top.decode().split() == ["insitu", "insitu_node"]


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the checkout with the wheel installed."""
    env_dir = tmp_path_factory.mktemp("venv")
    _timed("venv", [sys.executable, "-m", "venv", "--without-pip", str(env_dir)], 120)
    py = env_dir / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q"]
    _timed("pip install wheel", [*pip, "--no-deps", "--no-index", str(wheel)], 300)
    # the dependencies: this interpreter's site-packages, after the venv's own (added only now,
    # so pip above saw an empty environment)
    (purelib,) = (env_dir / "lib").glob("python3*/site-packages")
    (purelib / "insitu-test-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return env_dir


def _env(venv: Path) -> dict[str, str]:
    """No PYTHONPATH (it would put the checkout first); the venv's bin, then this
    interpreter's (micropython, mpremote: the dependencies' tools)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    bins = [str(venv / "bin"), str(Path(sys.executable).parent)]
    env["PATH"] = os.pathsep.join([*bins, env.get("PATH", "")])
    return env


def test_insitu_runs_from_the_wheel_outside_the_checkout(
    venv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ROOT is not None
    env, cwd = _env(venv), tmp_path
    insitu = str(venv / "bin" / "insitu")

    # the interpreter imports the wheel's insitu and finds every shipped file inside the venv
    r = _timed(
        "import",
        [str(venv / "bin" / "python"), "-c", "import json, insitu.resources as r; k = r.kit(); "
         "print(json.dumps([r.__file__, str(k.firmware), str(k.networks), str(k.boards), "
         "k.installed, r.network_names(), str(r.iris_csv())]))"],
        60, env=env, cwd=cwd,
    )  # fmt: skip
    mod, fw, nets, boards, installed, names, iris = json.loads(r.stdout)
    for p in (mod, fw, nets, boards, iris):
        assert Path(p).is_relative_to(venv) and not Path(p).is_relative_to(ROOT), p
    assert installed and "li-mao-2024" in names and Path(iris).is_file()
    assert not kit().installed  # and this test process runs from the checkout

    # a bundled network by name: the same config.json as the checkout generates
    r = _timed("board config", [insitu, "board", "config", "li-mao-2024", "--node", "13"], 60,
               env=env, cwd=cwd)  # fmt: skip
    capsys.readouterr()
    assert main(["board", "config", str(ROOT / "hardware/networks/li-mao-2024.toml"),
                 "--node", "13"]) == 0  # fmt: skip
    assert r.stdout == capsys.readouterr().out and json.loads(r.stdout)["node"] == "13"
    r = subprocess.run([insitu, "board", "config", "no-such-net", "--node", "13"],
                       capture_output=True, text=True, timeout=60, env=env, cwd=cwd)  # fmt: skip
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert "no-such-net" in line and "li-mao-2024" in line

    r = _timed("flash --help", [insitu, "flash", "--help"], 60, env=env, cwd=cwd)
    assert "--check" in r.stdout

    # the demo's cheapest honest form: one epoch of the real thing (~10 s)
    store = tmp_path / "runs.sqlite"
    r = _timed("demo --epochs 1", [insitu, "demo", "--epochs", "1", "--store", str(store)], 300,
               env=env, cwd=cwd)  # fmt: skip
    assert "train accuracy" in r.stdout and store.is_file()

    # the notebook API from the wheel: a recorded run names the wheel's firmware by content,
    # which is the checkout's firmware (same files a board gets, same hash)
    from insitu.deploy.flash import firmware_sha256

    r = _timed(
        "notebook API",
        [str(venv / "bin" / "python"), "-c", "import insitu; lab = insitu.Session('li-mao-2024',"
         f" profile='ideal', store={str(tmp_path / 'nb.sqlite')!r}); run = lab.train('iris', "
         "'insilico', epochs=1); print(run.info['config']['firmware_sha256'], "
         "run.stiffness().shape[1])"],
        120, env=env, cwd=cwd,
    )  # fmt: skip
    sha, cols = r.stdout.split()
    assert sha == firmware_sha256() and int(cols) == 1 + 28  # epoch + li-mao's 28 bonds

    # the kit's boards on one RS-485 bus from the wheel: its firmware's bus drop (hal/bus.py,
    # UartLink on the Pico pin map's [bus] UART and DE pin) on MicroPython processes
    r = _timed(
        "gradcheck --micropython --bus",
        [insitu, "gradcheck", "li-mao-2024", "--micropython", "--bus", "--profile", "realistic",
         "--load", "11:0,-0.04", "--adjoint", "13:0,0.02", "--json"],
        300, env=env, cwd=cwd,
    )  # fmt: skip
    assert json.loads(r.stdout)["cosine"] > 0.999

    # MicroPython boards from the wheel's firmware: started, one answers, flash --check finds
    # it identical to what the wheel would flash, then SIGINT stops them
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [insitu, "emulate", "li-mao-2024", "--micropython", "--workdir", str(tmp_path / "lab")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline()
        assert header.startswith("# li-mao-2024: 14 micropython boards"), header
        ports = dict(proc.stdout.readline().split("\t")[:2][::-1] for _ in range(14))
        TIMES["emulate --micropython: 14 boards up"] = time.monotonic() - t0
        port = ports["board 3"]
        rep = identify_port(port, attempts=10)
        assert rep.identities and rep.identities[0].firmware == VERSION, rep
        r = _timed(
            "flash --check one board",
            # the realistic boards are the kit's pico boards, as the file names them
            [insitu, "flash", "li-mao-2024", "--node", "3", "--port", port, "--check"],
            120, env=env, cwd=cwd,
        )  # fmt: skip
        assert "identical: " in r.stdout
        # a bundled network inside the wheel is not to be edited in place: copy it first
        r = subprocess.run([insitu, "flash", "li-mao-2024", "--all", "--port", port],
                           capture_output=True, text=True, timeout=60, env=env,
                           cwd=cwd)  # fmt: skip
        assert r.returncode == 2 and "record unique_id in a copy of " in r.stderr, r.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0, proc.stderr.read() if proc.stderr else rc
    for what, t in TIMES.items():
        print(f"\n{what}: {t:.1f} s", end="")


def test_version_is_the_distributions_and_the_firmwares() -> None:
    """`import insitu` says which version it is, the same as pyproject and the firmware."""
    import re

    import insitu
    from insitu_node import VERSION

    text = (ROOT / "pyproject.toml").read_text()  # no tomllib on Python 3.10
    match = re.search(r'^version = "([^"]+)"', text, re.M)
    assert match and insitu.__version__ == match.group(1) == VERSION
