"""Recording a run as it trains (a trainer Callback) and finding where to resume it.

``Recorder`` only records: every step, every epoch's scores, the checkpoints the training
loop takes (``on_checkpoint``: one committed row each — the loop tells the boards to save
only after this row is in, trainers/loop.py), the gradient checks, in-place recoveries and
the rig's events (faults the session recovered from, frames the boards sent), one committed
row at a time. It never sends anything to a board.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from insitu.store.db import Checkpoint, RunStore
from insitu.trainers.common import (
    Callback,
    EpochRecord,
    GradientCheck,
    Resume,
    Snapshot,
    StepInfo,
    TrainConfig,
)

# Rig counters whose growth is logged as an event (faults the session recovered from).
FAULT_COUNTERS = ("retries", "corrupt", "stale", "duplicates", "skipped")


class Recorder(Callback):
    """Writes a run to the store while it trains.

    ``rig``: the session of a rig-based run, read, never driven: its counters (measurements,
    messages, faults) and the events the boards sent. ``resume``: the checkpoint a resumed
    run continues from (its counters carry on).
    """

    def __init__(
        self,
        store: RunStore,
        run: int,
        rig: Any = None,
        resume: Checkpoint | None = None,
        baseline: tuple[int, int] = (0, 0),
    ) -> None:
        """``baseline``: the rig's (loadings, sent) counters when this part of the run began
        (what the process spent before it — connecting, a resume's roll-back — is not the
        run's again)."""
        self.store = store
        self.run = run
        self.rig = rig
        self.resume = resume
        self.meas0 = (resume.measurements if resume else 0) - baseline[0]
        self.msgs0 = (resume.messages if resume else 0) - baseline[1]
        self.step = resume.step if resume else 0
        self.epoch = resume.epoch if resume else 0
        self._faults = {c: 0 for c in FAULT_COUNTERS}
        self._events_seen = 0
        # (measurements, messages) the store holds at each checkpoint: a rollback counts on
        # from there (the steps measured again are the run's once, as in a resume)
        self._at: dict[int, tuple[int, int]] = {}
        if resume is not None:
            self._at[resume.step] = (resume.measurements, resume.messages)
        self._scored: dict[int, tuple[int, int]] = {}  # the same at each epoch's score
        self._spe = 1

    # ------------------------------------------------------------------ counters

    @property
    def measurements(self) -> int:
        """Physical loadings of the run so far (0 without a rig), carried over a resume."""
        return self.meas0 + (self.rig.counters.loadings if self.rig is not None else 0)

    @property
    def messages(self) -> int:
        return self.msgs0 + (self.rig.counters.sent if self.rig is not None else 0)

    def _log_rig(self, step: int | None) -> None:
        """Events for faults the session recovered from and for frames the boards sent."""
        if self.rig is None:
            return
        c = self.rig.counters
        grew = {k: getattr(c, k) - self._faults[k] for k in FAULT_COUNTERS}
        grew = {k: v for k, v in grew.items() if v > 0}
        if grew:
            self.store.add_event(self.run, "faults", grew, step)
            self._faults.update({k: getattr(c, k) for k in grew})
        events = self.rig.events
        for addr, args in events[self._events_seen :]:
            self.store.add_event(self.run, "board", {"board": addr, **dict(args)}, step)
        self._events_seen = len(events)

    # ------------------------------------------------------------------ callback hooks

    def on_start(self, net: Any, task: Any, config: TrainConfig, k: np.ndarray) -> None:
        self._spe = max(1, -(-int(task.train.size) // config.batch))
        if self.rig is not None:
            boards = {
                a: {"uid": i.uid, "boots": i.boots, "persist": i.persist, "cfg": i.config_hash,
                    "cal": i.calibration}
                for a, i in self.rig.boards.items()
            }
            self.store.add_event(self.run, "connect", {"boards": boards}, self.step)
            self._faults = {k_: getattr(self.rig.counters, k_) for k_ in FAULT_COUNTERS}

    def on_checkpoint(self, snap: Snapshot) -> None:
        if snap.realised is not None:  # what the elements realise for what the nodes sent
            self.store.add_event(
                self.run, "realised", {"k": [float(x) for x in snap.realised]}, snap.step
            )
        self._at[snap.step] = (self.measurements, self.messages)
        self.store.add_snapshot(
            self.run, snap.step, snap.epoch, snap.k, snap.opt, on_boards=snap.on_boards,
            measurements=self.measurements, messages=self.messages,
        )  # fmt: skip

    def on_step(self, info: StepInfo) -> None:
        self.step, self.epoch = info.step, info.epoch
        self.store.add_step(
            self.run, info.epoch, info.step, info.loss, None, info.max_dk, info.at_bound,
            self.measurements, self.messages,
        )  # fmt: skip
        self._log_rig(info.step)

    def on_gradient(self, check: GradientCheck) -> None:
        self.store.add_gradient(self.run, check.epoch, check.step, check.insitu, check.exact)

    def on_epoch(self, record: EpochRecord) -> None:
        # after its gradient check: a resume scores again (and checks again) every epoch
        # whose row is missing, so a kill during the check loses nothing
        self._scored[record.epoch] = (self.measurements, self.messages)
        self.store.add_epoch(
            self.run, record.epoch, record.train_loss, record.test_loss,
            record.train_accuracy, record.test_accuracy, self.measurements,
        )  # fmt: skip

    def on_event(self, step: int, kind: str, detail: dict[str, Any]) -> None:
        self.store.add_event(self.run, kind, detail, step)

    def on_recover(self, step: int, error: str, rebooted: Sequence[str]) -> None:
        self._log_rig(self.step)
        boots = {a: i.boots for a, i in self.rig.boards.items()} if self.rig is not None else {}
        detail = {"from_step": step, "redo_steps": max(0, self.step - step), "pid": os.getpid(),
                  "boots": boots, "rebooted": list(rebooted), "after": error}  # fmt: skip
        self.store.add_event(self.run, "resume", detail, step)
        if step in self._at and self.rig is not None:
            # the checkpoint's counts, or those after a score the loop keeps (not redone)
            kept = [c for e, c in self._scored.items() if e * self._spe <= step]
            meas, msgs = max([self._at[step], *kept])
            self.meas0 = meas - int(self.rig.counters.loadings)
            self.msgs0 = msgs - int(self.rig.counters.sent)
        self.step = step

    def on_end(self, result: Any) -> None:
        self._log_rig(self.step)
        detail: dict[str, Any] = {"steps": result.steps, "measurements": self.measurements}
        self.store.add_event(self.run, "end", detail, self.step)
        self.store.set_status(self.run, "finished")


def mark_failed(store: RunStore, run: int, exc: BaseException, step: int | None) -> None:
    """Status failed (or interrupted on Ctrl-C) and an event saying why. A store that cannot
    be written (the failure itself, often) keeps its rows as they are: the run then shows as
    'running?' (its process gone) and resumes from its last checkpoint all the same."""
    from insitu.store.db import StoreWriteError

    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    try:
        store.add_event(run, status, {"error": f"{type(exc).__name__}: {exc}"}, step)
        store.set_status(run, status)
    except StoreWriteError:
        pass


def history_until(store: RunStore, run: int, ckpt: Checkpoint, steps_per_epoch: int):
    """EpochRecords of the epochs complete at the checkpoint (k from the epoch-end snapshot)."""
    snaps = {s["step"]: s for s in store.snapshots(run)}
    out = []
    for e in store.epochs(run):
        end_step = e["epoch"] * steps_per_epoch
        if end_step > ckpt.step:
            continue
        snap = snaps.get(end_step)
        k = np.array(snap["k"], dtype=float) if snap else np.full(ckpt.k.size, np.nan)
        out.append(
            EpochRecord(
                e["epoch"],
                e["train_loss"],
                e["test_loss"],
                e["train_accuracy"],
                e["test_accuracy"],
                k,
            )  # fmt: skip
        )
    return tuple(out)


def checkpoints(store: RunStore, run: int) -> list[Snapshot]:
    """The run's checkpoints as the training loop's snapshots, newest first."""
    return [Snapshot(c.step, c.epoch, c.k, c.opt, c.on_boards) for c in store.checkpoints(run)]


def resume_from(store: RunStore, run: int, ckpt: Checkpoint, steps_per_epoch: int) -> Resume:
    """Where the training loop continues: the checkpoint (its optimiser state too; a method
    whose optimiser runs on the boards takes theirs from their flash) and the epochs before."""
    history = history_until(store, run, ckpt, steps_per_epoch)
    return Resume(step=ckpt.step, k=ckpt.k.copy(), opt=ckpt.opt, history=history)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
