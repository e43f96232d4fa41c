"""Bad files, everywhere the command line reads one (issue 17 item 1): every subcommand that
takes a network file, a pin map, a task CSV or a run store, handed files that are not what
they should be (missing, a directory, empty, not UTF-8, binary, broken TOML, the wrong
schema, numbers that overflow), answers with exit status 2 and one line on stderr naming the
file, no traceback, and creates nothing in its working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from insitu.cli.main import main

BAD: dict[str, bytes | None] = {
    "missing": None,  # not created
    "directory": None,  # made a directory
    "empty": b"",
    "not-utf8": b"\xff\xfe\x00\x9c bad \x80",
    "binary": bytes(range(256)) * 4,
    "broken-toml": b"[network\nname = \n",
    "wrong-schema": b'[network]\nname = 3\n[[nodes]]\nid = "x"\n',
    "overflow": b'[network]\nname = "n"\ndim = 2\n[[nodes]]\nid = 1\nx = 1e999\ny = 0\n',
}

# (label, argv with FILE where the bad file goes)
COMMANDS = [
    ("solve", ["solve", "FILE", "--load", "11:0,-0.01"]),
    ("train", ["train", "FILE", "--task", "iris", "--epochs", "1", "--quiet"]),
    ("train-csv", ["train", "li-mao-2024", "--task-csv", "FILE", "--epochs", "1", "--quiet"]),
    ("train-store", ["train", "li-mao-2024", "--task", "iris", "--method", "insilico",
                     "--epochs", "1", "--quiet", "--store", "FILE"]),
    ("gradcheck", ["gradcheck", "FILE"]),
    ("board-config", ["board", "config", "FILE", "--node", "1"]),
    ("board-pins", ["board", "config", "li-mao-2024", "--node", "13", "--pins", "FILE"]),
    ("calibrate", ["calibrate", "FILE"]),
    ("check", ["check", "FILE"]),
    ("emulate", ["emulate", "FILE"]),
    ("sweep", ["sweep", "FILE", "--task", "iris", "--methods", "insilico", "--seeds", "0",
               "--epochs", "1", "--workers", "1", "--quiet"]),
    ("runs", ["runs", "--store", "FILE"]),
    ("plot", ["plot", "1", "--store", "FILE"]),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("label,argv", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_bad_file_is_one_line_exit_2_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    label: str, argv: list[str], bad: str,
) -> None:  # fmt: skip
    if label == "train-store" and bad in ("missing", "empty"):
        pytest.skip("a new store file (or an empty one, which sqlite takes as new) is valid")
    work = tmp_path / "work"
    work.mkdir()
    path = tmp_path / f"{bad}.toml"
    if bad == "directory":
        path.mkdir()
    elif BAD[bad] is not None:
        path.write_bytes(BAD[bad])  # type: ignore[arg-type]
    if label == "train-csv":  # a CSV, not TOML: same bytes under a .csv name
        path = path.rename(path.with_suffix(".csv")) if path.exists() else path.with_suffix(".csv")
    monkeypatch.chdir(work)
    monkeypatch.delenv("INSITU_STORE", raising=False)
    before = _tree(tmp_path)
    rc = main([str(path) if a == "FILE" else a for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("insitu "), lines
    assert path.name in lines[0] or path.stem in lines[0], lines
    assert _tree(tmp_path) == before, "a refused command wrote files"


def test_more_boards_than_the_machine_can_emulate_is_one_line(tmp_path, capsys) -> None:
    """`insitu emulate NET --micropython` starts one interpreter process per board: a 324-board
    lattice is refused in one line before any process starts (a 10^5-node file would have
    tried 10^5 processes and pseudo-terminals)."""
    from insitu.emulator.mplab import MAX_BOARDS

    net = tmp_path / "n324.toml"
    assert main(["network", "triangular", "--rows", "18", "-o", str(net)]) == 0
    capsys.readouterr()
    assert main(["emulate", str(net), "--micropython"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"insitu emulate: error: triangular-18x18: 324 boards; MicroPython boards "
                   f"are one process each, at most {MAX_BOARDS} (drop --micropython for "
                   f"in-process boards)"]  # fmt: skip
