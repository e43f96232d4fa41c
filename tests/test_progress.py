"""The training progress display: a live bar on a terminal, one plain line per epoch elsewhere."""

from __future__ import annotations

import io
from types import SimpleNamespace

from insitu.cli.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(stream: io.StringIO, epochs: int = 3, steps: int = 5) -> str:
    p = Progress(epochs, steps, stream)
    p.on_start()
    p.on_epoch(SimpleNamespace(epoch=0, train_accuracy=0.3, test_accuracy=None,
                               train_loss=4.2, test_loss=4.3))  # fmt: skip
    for e in range(1, epochs + 1):
        for s in range(steps):
            p.on_step(SimpleNamespace(epoch=e, step=(e - 1) * steps + s + 1, loss=1.0 / e))
        p.on_epoch(SimpleNamespace(epoch=e, train_accuracy=0.5 + 0.1 * e, test_accuracy=0.5,
                                   train_loss=1.0 / e, test_loss=1.1 / e))  # fmt: skip
    p.on_end(None)
    return stream.getvalue()


def test_a_pipe_or_log_gets_one_plain_line_per_epoch() -> None:
    out = _run(io.StringIO())
    assert "\r" not in out
    lines = out.splitlines()
    assert len(lines) == 4  # initial + 3 epochs, nothing per step
    assert lines[0].startswith("  initial: train 0.300  test -")
    assert lines[3].startswith("  epoch 3/3: train 0.800  test 0.500  (loss 0.3333 / 0.3667)")


def test_a_terminal_gets_a_live_bar_and_the_epoch_lines() -> None:
    out = _run(Terminal())
    assert "\r" in out and "epoch 2/3" in out and "loss=" in out
    assert "  epoch 3/3: train 0.800" in out
