"""Training progress on stderr (a trainers.common Callback).

On a terminal: a tqdm bar over the whole run (epoch, steps, the running mean of the last 8
batch losses, rate and time left) with each epoch's scores printed above it. Anywhere else (a
pipe, a log file, CI): one plain line per scored epoch and nothing per step, so a `make demo`
log stays a few short lines per epoch instead of one line of carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _acc(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


class Progress:
    def __init__(
        self,
        epochs: int,
        steps_per_epoch: int,
        stream: TextIO | None = None,
        live: bool | None = None,
    ) -> None:
        self.epochs = epochs
        self.total = max(1, epochs * steps_per_epoch)
        self.t0 = time.monotonic()
        self.losses: list[float] = []
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty()) if live is None else live
        self._bar: Any = None
        if self.live:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total, file=self.stream, unit="step", dynamic_ncols=True,
                leave=False, desc=f"epoch 1/{epochs}",
            )  # fmt: skip

    def on_start(self, *args: Any) -> None:
        pass

    def on_step(self, info: Any) -> None:
        self.losses.append(info.loss)
        if self._bar is None:
            return
        recent = self.losses[-8:]
        self._bar.set_description(f"epoch {info.epoch}/{self.epochs}", refresh=False)
        self._bar.set_postfix(loss=f"{sum(recent) / len(recent):.3f}", refresh=False)
        self._bar.update(min(info.step, self.total) - self._bar.n)

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def on_epoch(self, rec: Any) -> None:
        tr, te = _acc(rec.train_accuracy), _acc(rec.test_accuracy)
        scores = f"train {tr}  test {te}  (loss {rec.train_loss:.4g} / {rec.test_loss:.4g})"
        if rec.epoch == 0:
            self._line(f"  initial: {scores}")
        else:
            elapsed = time.monotonic() - self.t0
            self._line(f"  epoch {rec.epoch}/{self.epochs}: {scores}  {elapsed:.1f} s")

    def on_end(self, result: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
