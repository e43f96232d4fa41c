"""Terminal manners (issue 17 item 2): diagnostics through `logging` with levels
(`insitu --log-level`, $INSITU_LOG), no colour codes (NO_COLOR holds), and a progress display
that is a tqdm bar on a terminal and one line per epoch elsewhere."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

from insitu.cli.main import main

# a superposed run whose linearity tolerance no realistic rig meets: every step falls back
FALLBACK = ["train", "li-mao-2024", "--task", "iris", "--method", "superposed", "--epochs", "1",
            "--batch", "105", "--profile", "realistic", "--no-store", "--quiet",
            "--linearity-tol", "0.001", "--gradient-epochs", ""]  # fmt: skip


def test_handled_trouble_is_a_warning_line_and_levels_filter_it(capsys) -> None:
    assert main(FALLBACK) == 0
    err = capsys.readouterr().err.splitlines()
    warn = [ln for ln in err if ln.startswith("insitu: WARNING: linearity check")]
    assert len(warn) == 1 and warn[0].endswith("(insitu.trainers.superposed)"), err
    assert main(["--log-level", "error", *FALLBACK]) == 0
    assert "WARNING" not in capsys.readouterr().err


def test_a_bad_log_level_is_one_line(capsys, monkeypatch) -> None:
    monkeypatch.setenv("INSITU_LOG", "loud")
    assert main(["runs", "--store", os.devnull + "-none"]) == 2
    err = capsys.readouterr().err
    assert err == "insitu: error: $INSITU_LOG='loud': choose from debug, info, warning, error\n"
    assert main(["--log-level", "loud", "runs"]) == 2
    assert "--log-level: invalid choice: 'loud'" in capsys.readouterr().err


def _on_a_terminal(args: list[str], env: dict[str, str]) -> bytes:
    """stderr of `insitu ARGS` when it is a terminal (a pseudo-terminal here)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from insitu.cli.main import "
                             "main; sys.exit(main())", *args], stdout=subprocess.DEVNULL,
                            stderr=slave, env=env)  # fmt: skip
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0, out[-500:]
    return out


def test_a_terminal_gets_a_bar_and_no_colour() -> None:
    args = ["train", "li-mao-2024", "--task", "iris", "--method", "insilico", "--epochs", "3",
            "--no-store"]  # fmt: skip
    env = dict(os.environ, NO_COLOR="1")
    out = _on_a_terminal(args, env)
    assert b"\r" in out and b"epoch 3/3" in out  # the bar redraws in place
    assert not re.search(rb"\x1b\[[0-9;]*m", out), "colour codes on a NO_COLOR terminal"


def test_a_pipe_gets_one_line_per_epoch() -> None:
    args = ["train", "li-mao-2024", "--task", "iris", "--method", "insilico", "--epochs", "3",
            "--no-store"]  # fmt: skip
    r = subprocess.run([sys.executable, "-c", "import sys; from insitu.cli.main import main; "
                        "sys.exit(main())", *args], capture_output=True)  # fmt: skip
    assert r.returncode == 0
    lines = r.stderr.decode().splitlines()
    assert "\r" not in r.stderr.decode()
    assert [ln.split(":")[0].strip() for ln in lines] == ["initial", "epoch 1/3", "epoch 2/3",
                                                          "epoch 3/3"]  # fmt: skip
