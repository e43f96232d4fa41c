"""The one training loop: every method runs here (docs/methods.md, docs/reliability.md).

A method contributes a ``Plan`` (trainers/protocol.py): what it does to one mini-batch and
where its learned state lives. This loop does the rest, the same way for every method: the
start (tare, optimiser reset, the declared start stiffness), the seeded batches (the same for
every method: ``default_rng([seed, 0x1A5])``), scores at epoch 0, every ``eval_every`` epochs
and at the end, gradient checks, callbacks, checkpoints, in-place recovery and resume.

**The checkpoint invariant.** A checkpoint after step s is, in this order: the state read
(from the boards, or from the host's optimiser), the callbacks' ``on_checkpoint`` (a run
store commits its row there), then ``save step=s`` on every board. So the boards' flash is
never ahead of the store: after a kill anywhere, every board holds the store's newest
checkpoint or the one before (a node keeps its last two), and ``rejoin`` puts every board
back at the newest one they all hold. A kill between the row and the save costs the steps
since the previous checkpoint, never a state the store does not know.

**In-place recovery.** When a step, a score or a checkpoint fails with a ``RigError`` (a
board restarted, a reply never came, a board refused), every board is rolled back to the
newest checkpoint (the one before if a board lacks it: a save the failure split), a host
plan takes back its state, and the steps since are measured again — up to ``recover``
rollbacks from one checkpoint. Resume (``Context.resume``) is the same continuation after
the host itself died: the batches are drawn again from the seed and the steps up to the
checkpoint skipped, so a resumed run draws what an uninterrupted one would have.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from insitu.network.schema import Network
from insitu.rig.session import Rig, RigError
from insitu.tasks.base import Task
from insitu.trainers.common import (
    Callback,
    EpochRecord,
    GradientCheck,
    Snapshot,
    StepInfo,
    TrainConfig,
    listens,
    notify,
)
from insitu.trainers.insitu import InSituResult, accumulate_batch, evaluate
from insitu.trainers.protocol import Context, Plan

log = logging.getLogger(__name__)

BATCH_STREAM = 0x1A5  # the batch order's stream: default_rng([seed, BATCH_STREAM])


@dataclass
class MethodResult(InSituResult):
    """InSituResult plus the loadings spent on learning, per step (scores excluded), and the
    rig time the boards' own clock counted (``rig_seconds``: settling, sampling, the wire)."""

    train_loadings: int = 0
    step_loadings: list[int] = field(default_factory=list)
    rig_seconds: float = 0.0
    gradient_checks: list[GradientCheck] = field(default_factory=list)

    def summary(self) -> dict:
        d = super().summary()
        d["measurements"] = self.measurements
        d["loadings"] = self.measurements
        d["rig_seconds"] = self.rig_seconds
        d["train_loadings"] = self.train_loadings
        d["loadings_per_step"] = (
            self.train_loadings / len(self.step_loadings) if self.step_loadings else 0.0
        )
        if self.gradient_checks:
            d["gradient_cosine"] = {str(c.epoch): c.cosine for c in self.gradient_checks}
        return d


def batches(task: Task, config: TrainConfig) -> Iterator[tuple[int, int, np.ndarray, bool]]:
    """(epoch, step, sample indices, last of its epoch) of the whole run, from the seed."""
    rng = np.random.default_rng([config.seed, BATCH_STREAM])  # the task's split uses seed alone
    step = 0
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(task.train)
        for start in range(0, order.size, config.batch):
            step += 1
            end = start + config.batch >= order.size
            yield epoch, step, order[start : start + config.batch], end


def steps_per_epoch(task: Task, config: TrainConfig) -> int:
    return max(1, -(-int(task.train.size) // config.batch))


# ---------------------------------------------------------------------- boards and checkpoints


def board_opt_state(rig: Rig, states: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
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


class NoCheckpoint(RuntimeError):
    """The boards hold none of the checkpoints a run could continue from."""


def _matches(snap: Snapshot, k: np.ndarray, opt: Mapping[str, Any], holds: str) -> bool:
    """The boards hold the checkpoint's stiffness (and, if they run the optimiser, its Adam
    step count and first moments)."""
    if not np.array_equal(np.asarray(snap.k), np.asarray(k)):
        return False
    if holds != "boards":
        return True
    return (
        snap.opt is not None
        and snap.opt.get("t") == opt.get("t")
        and np.array_equal(np.asarray(snap.opt["m"]), np.asarray(opt["m"]))
    )


def _board_state(rig: Rig) -> tuple[np.ndarray, dict]:
    states = rig.state()
    return rig.stiffness(states), board_opt_state(rig, states)


def rejoin(rig: Rig, snaps: Sequence[Snapshot], holds: str = "boards", tries: int = 3) -> Snapshot:
    """Put every board back at the newest of ``snaps`` (a run's checkpoints on boards, newest
    first) that they all hold, and have them save it again; return it.

    Usually the boards are at the newest already (they booted from their flash, or stayed
    powered at it) or at the one before (the host died between the store's row and the
    save). Otherwise — a kill in the middle of the ``save`` broadcast split them, or powered
    boards ran ahead of their flash — every board is told to ``load step=`` the checkpoints,
    newest first (``tries`` of them), until all hold it and their state is its state. The
    save afterwards (same label) lets a board whose flash was behind catch up, so a kill
    later finds every board holding this checkpoint or a newer one.
    """
    snaps = [s for s in snaps if s.on_boards]
    if not snaps:
        raise NoCheckpoint("no checkpoint of this run is on the boards")
    k, opt = _board_state(rig)
    found = next((s for s in snaps if _matches(s, k, opt, holds)), None)
    why = (f"the boards' flash matches no checkpoint (they report Adam step {opt.get('t')}; "
           f"checkpoints at steps {', '.join(str(s.step) for s in snaps[:5])})")  # fmt: skip
    for s in snaps[:tries] if found is None else ():
        try:
            rig.load(s.step)
        except RigError:
            continue  # some board does not hold it
        k, opt = _board_state(rig)
        if _matches(s, k, opt, holds):
            found = s
            break
        why = f"the boards' checkpoint {s.step} is not the one stored (Adam step {opt.get('t')})"
    if found is None:
        raise NoCheckpoint(why)
    rig.save(found.step)
    return found


# ------------------------------------------------------------------------------------ the loop


class _Run:
    """One run of a plan: the state the loop keeps between steps."""

    def __init__(
        self, name: str, net: Network, task: Task, config: TrainConfig, plan: Plan,
        callbacks: Sequence[Callback], ctx: Context,
    ) -> None:  # fmt: skip
        if ctx.rig is not None and ctx.phases is None:
            raise TypeError(f"method {name}: a rig needs phases")
        self.name, self.net, self.task, self.config = name, net, task, config
        self.plan, self.callbacks, self.ctx = plan, callbacks, ctx
        self.rig = ctx.rig
        # the boards' state is read at a checkpoint only for a callback that records it: a
        # rollback needs only the boards' own flash (reads cost no loading and no rig time)
        self.listening = listens(callbacks, "on_checkpoint")
        self.host = plan.holds != "boards"
        self.on_boards = self.rig is not None and (not self.host or plan.on_boards)
        self.spe = steps_per_epoch(task, config)
        self.done = ctx.resume.step if ctx.resume is not None else 0
        self.last: list[Snapshot] = []  # the newest two checkpoints, newest last
        self.budget = ctx.recover
        last_epoch = config.epochs if config.epochs > 0 else 0
        self.wanted = {last_epoch if e == -1 else e for e in ctx.gradient_epochs}

    # ------------------------------------------------------------------ the rig's state

    def start(self) -> np.ndarray:
        rig, ph = self.rig, self.ctx.phases
        if rig is not None and ph is not None:
            rig.check_boots()  # a board restarted since connect: say so now; anchors rig time
            if self.done == 0 or not self.on_boards:
                # a kill in the first save leaves boards unsaved: a step-0 resume starts again
                rig.tare(settle_ms=ph.settle_ms, n=ph.n)
                rig.reset(opt=True)
            else:  # offsets and moments came back from flash; forget only what was in flight
                rig.forces_off()
                rig.release()
                rig.reset()
        self.plan.start(rig, ph)
        res = self.ctx.resume
        if res is not None and self.host:
            self.plan.restore(res.k, res.opt)
        if res is not None:
            opt = res.opt if self.host else None
            epoch = min(self.config.epochs, res.step // self.spe)
            self.last = [Snapshot(res.step, epoch, res.k, opt, self.on_boards)]
        return self.k()

    def k(self) -> np.ndarray:
        """The stiffness the run is at: the host plan's, or what the boards hold."""
        if self.host:
            return np.array(self.plan.k(), dtype=float)
        assert self.rig is not None
        return self.rig.stiffness()

    def capture(self, step: int, epoch: int) -> Snapshot:
        rig = self.rig
        realised = None
        if rig is not None and self.on_boards and not self.host and not self.listening:
            return Snapshot(step, epoch, np.full(self.net.n_bonds, np.nan), None, True)
        if rig is not None and self.on_boards:
            # a board that restarted since its last reply holds its flash state, not the
            # run's: never take such a mix as a checkpoint (RigReboot: roll back instead)
            rig.check_boots()
            states = rig.state()
            rig.check_boots()
            realised = rig.realised_stiffness(states)
            if not self.host:
                k, opt = rig.stiffness(states), board_opt_state(rig, states)
                return Snapshot(step, epoch, k, opt, True, realised)
        k, opt = np.array(self.plan.k(), dtype=float), self.plan.opt_state()
        return Snapshot(step, epoch, k, opt, self.on_boards, realised)

    def checkpoint(self, step: int, epoch: int) -> None:
        """The invariant: the state read, the callbacks (the store's row), then the boards'
        flash."""
        snap = self.capture(step, epoch)
        notify(self.callbacks, "on_checkpoint", snap)
        if snap.on_boards:
            assert self.rig is not None
            self.rig.save(step)  # labelled: a board can `load step=` it back
        self.last = [*self.last[-1:], snap]
        self.budget = self.ctx.recover

    # ------------------------------------------------------------------ scores and checks

    def record(self, epoch: int, step: int, result: MethodResult) -> None:
        task, rig, ph = self.task, self.rig, self.ctx.phases
        tr = self.plan.score(task.train)
        if tr is not None:
            te = self.plan.score(task.test)
            k = self.k()
        else:
            assert rig is not None and ph is not None
            k = rig.stiffness()
            tr = evaluate(rig, task, task.train, ph)
            te = evaluate(rig, task, task.test, ph)
        assert te is not None
        if self.ctx.truth is not None and epoch in self.wanted:
            self.gradient_check(epoch, step, result)
        if rig is not None:
            rig.check_boots()  # a board that restarted mid-score lost its forces and its k
        rec = EpochRecord(epoch, tr[0], te[0], tr[1], te[1], k)
        result.history.append(rec)
        notify(self.callbacks, "on_epoch", rec)

    def gradient_check(self, epoch: int, step: int, result: MethodResult) -> None:
        """One batch (the first ``batch`` training samples) measured in situ: the boards'
        accumulated e·e_adj / B against the exact gradient (2·B loadings; the nodes'
        accumulators are cleared before and after, their k and optimiser untouched)."""
        rig, ph, task, truth = self.rig, self.ctx.phases, self.task, self.ctx.truth
        assert rig is not None and ph is not None and truth is not None
        idx = task.train[: self.config.batch]
        io = self.net.io_set(task.io)
        X, Y = task.inputs[idx], task.targets[idx]
        rig.reset()
        accumulate_batch(rig, io.inputs, io.outputs, X, Y, task.loss_grad, ph)
        g_sum, count = rig.accumulated()
        rig.reset()
        exact = truth(task.io, X, Y, task.loss_grad)
        check = GradientCheck(epoch, step, g_sum / max(1, count), exact)
        result.gradient_checks.append(check)
        notify(self.callbacks, "on_gradient", check)

    # ------------------------------------------------------------------ steps

    def steps(self, result: MethodResult) -> int:
        """Every step after ``self.done``, with the scores and checkpoints due; the number of
        steps of the run."""
        rig, ph, config = self.rig, self.ctx.phases, self.config
        every = self.ctx.checkpoint_every
        step = 0
        for epoch, step, idx, end in batches(self.task, config):
            first = (step - 1) % self.spe == 0
            if first and rig is not None and ph is not None and ph.tare_every and epoch > 1:
                # re-zero the strain channels (drift); a resumed epoch keeps the offsets its
                # checkpoint saved
                if (epoch - 1) % ph.tare_every == 0 and step > self.done:
                    rig.tare(settle_ms=ph.settle_ms, n=ph.n)
                    if every is not None and self.last and self.last[-1].on_boards:
                        rig.save(self.last[-1].step)  # the checkpoint carries the new offsets
            if step > self.done:
                before = rig.counters.loadings if rig is not None else 0
                s = self.plan.step(idx, step)
                for kind, detail in self.plan.drain_events():
                    notify(self.callbacks, "on_event", step, kind, detail)
                spent = (rig.counters.loadings - before) if rig is not None else 0
                result.step_loadings.append(spent)
                result.train_loadings += spent
                self.done = step
                if self.host:
                    k_now, opt = np.array(self.plan.k(), dtype=float), self.plan.opt_state()
                else:  # reading k back costs a request per board
                    k_now, opt = np.full(self.net.n_bonds, np.nan), None
                info = StepInfo(epoch, step, idx, s.loss, s.grad, k_now, s.max_dk, s.frozen, opt)
                notify(self.callbacks, "on_step", info)
                if every is not None and (end or (every and step % every == 0)):
                    self.checkpoint(step, epoch)
            if end:
                self.epoch_end(epoch, step, result)
        return step

    def epoch_end(self, epoch: int, step: int, result: MethodResult) -> None:
        last = epoch == self.config.epochs
        every = max(1, self.ctx.eval_every)
        due = last or (self.plan.scores_each_epoch and epoch % every == 0)
        if due and epoch > result.history[-1].epoch:
            if last:
                self.plan.finish()
            self.record(epoch, step, result)

    def rollback(self, exc: RigError, result: MethodResult) -> None:
        """Back to the newest checkpoint every board holds, or raise ``exc``."""
        rig = self.rig
        if rig is None or self.ctx.checkpoint_every is None or not self.last:
            raise exc
        while True:
            if self.budget <= 0:
                raise exc
            self.budget -= 1
            result.recoveries += 1
            try:
                snap, rebooted = self._back()
                break
            except RigError:
                continue  # a recovery that fails itself counts as one
        if self.host:
            self.plan.restore(snap.k, snap.opt)
        redo = max(0, self.done - snap.step)  # steps measured again: their loadings go
        del result.step_loadings[len(result.step_loadings) - redo :]
        result.train_loadings = int(sum(result.step_loadings))
        self.done = snap.step
        result.history = [h for h in result.history if h.epoch * self.spe <= snap.step]
        log.warning("recovered in place from %s: %s; back to step %d, %d step(s) to redo",
                    type(exc).__name__, exc, snap.step, redo)  # fmt: skip
        notify(self.callbacks, "on_recover", snap.step, f"{type(exc).__name__}: {exc}", rebooted)

    def _back(self) -> tuple[Snapshot, list[str]]:
        assert self.rig is not None
        err: RigError | None = None
        for snap in reversed(self.last):
            try:
                return snap, self.rig.recover(snap.step if snap.on_boards else None)
            except RigError as again:  # a board lacks it (a split save): the one before
                err = again
        assert err is not None
        raise err


def run(
    name: str,
    net: Network,
    task: Task,
    config: TrainConfig,
    plan: Plan,
    callbacks: Sequence[Callback],
    ctx: Context,
) -> MethodResult:
    """Train ``task`` on ``net`` with ``plan`` (method ``name``) as ``ctx`` says: on
    ``ctx.rig`` (opened by the caller, e.g. ``insitu.rig.open_rig``) or on the host alone."""
    r = _Run(name, net, task, config, plan, callbacks, ctx)
    k0 = r.start()
    result = MethodResult(name, task.name, config, k0.copy(), k0.copy())
    if ctx.resume is not None:
        result.history = list(ctx.resume.history)
        if ctx.resume.history:
            result.k_init = ctx.resume.history[0].k.copy()
    notify(callbacks, "on_start", net, task, config, k0.copy())
    steps = 0
    while True:
        try:
            if ctx.checkpoint_every is not None and not r.last:
                r.checkpoint(0, 0)
            if not result.history:
                r.record(0, 0, result)
            steps = r.steps(result)
            break
        except RigError as exc:
            r.rollback(exc, result)
    result.k_final = r.k()
    result.steps = steps
    if r.rig is not None:  # rig time: up to the last score's ping (Rig.mark_time)
        result.measurements = r.rig.counters.loadings
        result.counters = r.rig.counters.snapshot()
        result.faults = r.rig.fault_report()
        result.rig_seconds = r.rig.counters.rig_ms / 1000.0
    notify(callbacks, "on_end", result)
    return result
