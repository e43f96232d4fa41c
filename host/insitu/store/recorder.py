"""Recording a run as it trains (a trainer Callback) and finding where to resume it.

``Recorder`` writes every step, every epoch's scores, snapshots (checkpoints) and the rig's
events to a RunStore, one committed row at a time. A snapshot is taken after step 0 (the start),
every ``snapshot_every`` steps and at every epoch's last step. For a rig-based run a snapshot is
also a checkpoint on the boards: the store row is committed first, then every board is told to
``save step=s`` to its flash — so the boards' flash is never ahead of the store. A node keeps
its newest two checkpoints; after a crash between the row and the save, or in the middle of
the save broadcast, every board still holds the previous checkpoint, which
``board_checkpoint`` finds and puts every board back at.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from insitu.store.db import Checkpoint, RunStore, StoreError
from insitu.trainers.common import Callback, EpochRecord, Resume, StepInfo, TrainConfig

# Rig counters whose growth is logged as an event (faults the session recovered from).
FAULT_COUNTERS = ("retries", "corrupt", "stale", "duplicates", "skipped")


def board_opt_state(rig: Any, states: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The boards' optimiser state gathered per bond (network order)."""
    n = rig.network.n_bonds
    m, v = np.full(n, np.nan), np.full(n, np.nan)
    ts, names = set(), set()
    for addr, st in states.items():
        bd = rig.boards[addr].board
        o = st.get("opt") or {}
        if bd.bonds:
            ts.add(int(o.get("t", 0)))
            names.add(str(o.get("name")))
        for slot, b in enumerate(bd.bonds):
            m[b] = float(o["m"][slot])
            v[b] = float(o["v"][slot])
    return {
        "name": names.pop() if len(names) == 1 else sorted(names),
        "t": ts.pop() if len(ts) == 1 else sorted(ts),
        "m": m.tolist(),
        "v": v.tolist(),
    }


class Recorder(Callback):
    """Writes a run to the store while it trains.

    ``rig``: the session of a rig-based run (measurements and messages are read from its
    counters; snapshots read the boards' state and checkpoints save to their flash).
    ``truth`` + ``phases``: the reference gradient of emulated boards (``(io, X, Y,
    loss_grad) -> dL/dk``, e.g. ``insitu.rig.lab.truth_gradient(lab)``; the recorder never
    opens or builds boards), for the gradient check at ``gradient_epochs`` (-1 = the last
    epoch): one batch (the first ``batch`` training samples) measured in situ, the boards'
    accumulated e·e_adj / B against the exact gradient of the world at its true stiffness.
    It spends 2·B loadings each time; they count in ``measurements``.
    ``resume``: the checkpoint a resumed run continues from (its counters carry on).
    """

    def __init__(
        self,
        store: RunStore,
        run: int,
        rig: Any = None,
        truth: Callable[[str, np.ndarray, np.ndarray, Any], np.ndarray] | None = None,
        phases: Any = None,
        snapshot_every: int = 0,
        gradient_epochs: tuple[int, ...] = (),
        resume: Checkpoint | None = None,
        baseline: tuple[int, int] = (0, 0),
        logged: Recorder | None = None,
    ) -> None:
        """``baseline``: the rig's (loadings, sent) counters when this part of the run began
        (a run continued in the same process counts from there, not twice); ``logged``: the
        recorder of the earlier part in this process, whose rig events are logged already."""
        self.store = store
        self.run = run
        self.rig = rig
        self.truth = truth
        self.phases = phases
        self.snapshot_every = max(0, int(snapshot_every))
        self.gradient_epochs = tuple(gradient_epochs)
        self.resume = resume
        self.meas0 = (resume.measurements if resume else 0) - baseline[0]
        self.msgs0 = (resume.messages if resume else 0) - baseline[1]
        self.step = resume.step if resume else 0
        self.epoch = resume.epoch if resume else 0
        self._faults = dict(logged._faults) if logged else {c: 0 for c in FAULT_COUNTERS}
        self._events_seen = logged._events_seen if logged else 0
        self.net: Any = None
        self.task: Any = None
        self.config: TrainConfig | None = None
        self.steps_per_epoch = 1

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

    # ------------------------------------------------------------------ snapshots

    def snapshot(self, step: int, epoch: int, k: np.ndarray, opt: dict | None) -> None:
        """Store k (and the optimiser state); on a rig, then save every board's flash."""
        if self.rig is not None:
            # a board that restarted since its last reply holds its flash state, not the
            # run's: never store such a mix as a checkpoint (RigReboot instead; the run goes
            # back to the previous checkpoint). One ping before and one after the reads.
            self.rig.check_boots()
            states = self.rig.state()
            k = self.rig.stiffness(states)
            opt = board_opt_state(self.rig, states)
            self.rig.check_boots()
            # what the elements realise for what the nodes sent (their calibrated maps)
            kr = self.rig.realised_stiffness(states)
            self.store.add_event(self.run, "realised", {"k": [float(x) for x in kr]}, step)
        self.store.add_snapshot(
            self.run, step, epoch, k, opt, on_boards=self.rig is not None,
            measurements=self.measurements, messages=self.messages,
        )  # fmt: skip
        if self.rig is not None:
            self.rig.save(step)  # labelled: a board can `load step=` it back

    # ------------------------------------------------------------------ callback hooks

    def on_start(self, net: Any, task: Any, config: TrainConfig, k: np.ndarray) -> None:
        self.net, self.task, self.config = net, task, config
        self.steps_per_epoch = max(1, -(-int(task.train.size) // config.batch))
        if self.rig is not None:
            boards = {
                a: {"uid": i.uid, "boots": i.boots, "persist": i.persist, "cfg": i.config_hash,
                    "cal": i.calibration}
                for a, i in self.rig.boards.items()
            }
            self.store.add_event(self.run, "connect", {"boards": boards}, self.step)
            self._faults = {k_: getattr(self.rig.counters, k_) for k_ in FAULT_COUNTERS}
        if self.resume is None:
            zeros = [0.0] * net.n_bonds
            opt0 = {"name": config.optimiser, "t": 0, "m": zeros, "v": zeros}
            self.snapshot(0, 0, k, opt0)

    def on_step(self, info: StepInfo) -> None:
        self.step, self.epoch = info.step, info.epoch
        self.store.add_step(
            self.run, info.epoch, info.step, info.loss, None, info.max_dk, info.at_bound,
            self.measurements, self.messages,
        )  # fmt: skip
        self._log_rig(info.step)
        every = self.snapshot_every
        end_of_epoch = info.step % self.steps_per_epoch == 0
        if end_of_epoch or (every and info.step % every == 0):
            self.snapshot(info.step, info.epoch, info.k, info.opt)

    def on_epoch(self, record: EpochRecord) -> None:
        # the gradient check first, the epoch row last: a resume scores again (and checks
        # again) every epoch whose row is missing, so a kill during the check loses nothing
        measurements = self.measurements  # the epoch row counts the loadings before the check
        last = self.config.epochs if self.config is not None else -1
        wanted = {last if e == -1 else e for e in self.gradient_epochs}
        if self.truth is not None and record.epoch in wanted:
            self.gradient_check(record.epoch)
        self.store.add_epoch(
            self.run, record.epoch, record.train_loss, record.test_loss,
            record.train_accuracy, record.test_accuracy, measurements,
        )  # fmt: skip

    def on_end(self, result: Any) -> None:
        self._log_rig(self.step)
        detail: dict[str, Any] = {"steps": result.steps, "measurements": self.measurements}
        self.store.add_event(self.run, "end", detail, self.step)
        self.store.set_status(self.run, "finished")

    # ------------------------------------------------------------------ gradient check

    def gradient_check(self, epoch: int) -> None:
        from insitu.trainers.insitu import Phases, accumulate_batch

        assert self.truth is not None
        net, task, rig = self.net, self.task, self.rig
        idx = task.train[: self.config.batch]
        io = net.io_set(task.io)
        phases = self.phases or Phases()
        rig.reset()
        accumulate_batch(
            rig, io.inputs, io.outputs, task.inputs[idx], task.targets[idx], task.loss_grad,
            phases,
        )  # fmt: skip
        g_sum, count = rig.accumulated()
        rig.reset()
        insitu = g_sum / max(1, count)
        exact = self.truth(task.io, task.inputs[idx], task.targets[idx], task.loss_grad)
        self.store.add_gradient(self.run, epoch, self.step, insitu, exact)


def mark_failed(store: RunStore, run: int, exc: BaseException, step: int | None) -> None:
    """Status failed (or interrupted on Ctrl-C) and an event saying why."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    store.add_event(run, status, {"error": f"{type(exc).__name__}: {exc}"}, step)
    store.set_status(run, status)


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


def _same_state(c: Checkpoint, k: np.ndarray, opt: Mapping[str, Any]) -> bool:
    """The boards' stiffness, Adam step count and first moments are the checkpoint's."""
    return (
        c.opt is not None
        and np.array_equal(np.asarray(c.k), np.asarray(k))
        and c.opt.get("t") == opt.get("t")
        and np.array_equal(np.asarray(c.opt["m"]), np.asarray(opt["m"]))
    )


def find_checkpoint(
    store: RunStore, run: int, boards: tuple[np.ndarray, dict] | None = None
) -> Checkpoint:
    """The checkpoint to continue from: the newest one, or — for a run on boards — the newest
    one whose stiffness and optimiser step count are what the boards booted with."""
    ckpts = list(store.checkpoints(run))
    if not ckpts:
        raise StoreError(f"run {run} has no checkpoint to resume from")
    if boards is None:
        return ckpts[0]
    k, opt = boards
    for c in ckpts:
        if c.on_boards and _same_state(c, k, opt):
            return c
    raise StoreError(
        f"the boards' flash matches no checkpoint of run {run} (they report Adam step "
        f"{opt.get('t')}; checkpoints at steps {', '.join(str(c.step) for c in ckpts[:5])}...)"
    )


def _board_state(rig: Any) -> tuple[np.ndarray, dict]:
    states = rig.state()
    return rig.stiffness(states), board_opt_state(rig, states)


def board_checkpoint(store: RunStore, run: int, rig: Any, tries: int = 3) -> Checkpoint:
    """The checkpoint a run on boards continues from, every board put back at it and holding
    it as its newest checkpoint on flash.

    Usually all boards are on the same checkpoint already: emulated boards booted from their
    flash (the store's newest checkpoint, or the one before if the host died between the row
    and the save), or boards that stayed powered and are still at it. Otherwise — the host
    died in the middle of the ``save`` broadcast (some boards at the new checkpoint, the rest
    at the one before), or in a step, with powered boards ahead of their flash — every board
    is told to ``load step=`` the store's checkpoints, newest first (``tries`` of them), until
    all of them have it (a node keeps its last two), and their state is checked against it.
    Then every board saves it again (same label: the backup is kept; a board whose flash was
    behind, or empty after a kill in the first save, catches up), so that a kill later finds
    every board holding it or the next one.
    """
    try:
        found = find_checkpoint(store, run, _board_state(rig))
    except StoreError as exc:
        found = _load_checkpoint(store, run, rig, tries, exc)
    rig.save(found.step)
    return found


def _load_checkpoint(
    store: RunStore, run: int, rig: Any, tries: int, mismatch: StoreError
) -> Checkpoint:
    """The newest of the store's last `tries` checkpoints every board can `load`."""
    from insitu.rig.session import RigError

    ckpts = [c for c in store.checkpoints(run) if c.on_boards and c.opt is not None]
    for c in ckpts[:tries]:
        try:
            rig.load(c.step)
        except RigError:
            continue  # some board does not hold it
        k, opt = _board_state(rig)
        if _same_state(c, k, opt):
            return c
        # a board holds another state under this label (firmware before the refusal to
        # relabel a checkpoint): try the one before
        mismatch = StoreError(
            f"the boards' checkpoint {c.step} is not the one run {run} stored "
            f"(Adam step {opt.get('t')}, stored {c.opt.get('t') if c.opt else None})"
        )
    raise mismatch


def resume_from(store: RunStore, run: int, ckpt: Checkpoint, steps_per_epoch: int) -> Resume:
    history = history_until(store, run, ckpt, steps_per_epoch)
    opt = None if ckpt.on_boards else ckpt.opt
    return Resume(step=ckpt.step, k=ckpt.k.copy(), opt=opt, history=history)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
