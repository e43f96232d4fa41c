"""A progress line on stderr while a trainer runs (a trainers.common Callback, no dependencies).

One line per epoch that rewrites itself after every step: epoch, a bar over the whole run,
the running mean of the last 8 batch losses, elapsed seconds; epoch scores on their own line.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _acc(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


class Progress:
    def __init__(self, epochs: int, steps_per_epoch: int, stream: TextIO | None = None) -> None:
        self.epochs = epochs
        self.total = max(1, epochs * steps_per_epoch)
        self.t0 = time.monotonic()
        self.losses: list[float] = []
        self.stream = stream if stream is not None else sys.stderr
        self._open = False  # a progress line without its newline yet

    def on_start(self, *args: Any) -> None:
        pass

    def on_step(self, info: Any) -> None:
        self.losses.append(info.loss)
        done = min(1.0, info.step / self.total)
        bar = "#" * int(30 * done)
        loss = sum(self.losses[-8:]) / len(self.losses[-8:])
        self.stream.write(
            f"\r  epoch {info.epoch}/{self.epochs} [{bar:<30}] {100 * done:5.1f}%  "
            f"loss {loss:.3f}  {time.monotonic() - self.t0:6.1f} s"
        )
        self.stream.flush()
        self._open = True

    def on_epoch(self, rec: Any) -> None:
        tr, te = _acc(rec.train_accuracy), _acc(rec.test_accuracy)
        scores = f"train {tr}  test {te}  (loss {rec.train_loss:.4g} / {rec.test_loss:.4g})"
        if rec.epoch == 0:
            self.stream.write(f"  initial: {scores}\n")
        else:
            self.stream.write(f"{chr(10) if self._open else ''}  epoch {rec.epoch}: {scores}\n")
        self._open = False

    def on_end(self, result: Any) -> None:
        if self._open:
            self.stream.write("\n")
        self._open = False
