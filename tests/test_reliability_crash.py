"""Host crash (issue 7 part 4, docs/reliability.md §4): a real `insitu train` subprocess is
killed with SIGKILL at random wall-clock points, again and again — resumed processes too —
then `insitu train --resume` finishes the run. The store holds every step exactly once, one
`resume` event per resume that got going, and the final stiffness is bit-identical to an
uninterrupted run with the same seed.

The kill delays come from a seed printed with the results (`pytest -s` shows where every kill
landed); INSITU_CRASH_SEED=<seed> draws the same delays again (where they land depends on the
machine's speed). Wall-clock points land anywhere: in the interpreter's start-up, in connect
and resume, in a step, a score, a gradient check, a snapshot and its save.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import LI_MAO
from runproc import (
    INSITU,
    Ended,
    boards_dir,
    flash_steps,
    kill_after,
    kill_at_step,
    kill_when,
    killed_when,
    query,
    run_json,
)

from insitu.store import RunStore


def _seed() -> int:
    env = os.environ.get("INSITU_CRASH_SEED")
    return int(env) if env else random.SystemRandom().randrange(1 << 31)


@dataclass
class Landed:
    """Where one kill landed, read from the store after it."""

    pid: int
    resumed: bool  # the process was `--resume` (else the original command, started again)
    elapsed: float
    run: bool  # the run row existed
    step: int  # newest step row
    checkpoint: int | None  # newest snapshot row
    epochs: int  # epoch rows
    connects: int  # connect events (one per process on boards that got to train)
    flash: dict  # per board, the step its flash is at (what it would boot with)

    def __str__(self) -> str:
        who = "resume" if self.resumed else "train "
        where = (
            f"store at step {self.step:>3}, checkpoint {self.checkpoint}, {self.epochs} "
            f"epoch rows, {self.connects} connects"
            if self.run
            else "no run row yet"
        )
        at = sorted(set(self.flash.values()), key=lambda v: -1 if v is None else v)
        flash = f"; boards' flash at step {'/'.join(map(str, at))}" if self.flash else ""
        return f"{who} pid {self.pid} killed after {self.elapsed:5.2f} s: {where}{flash}"


def _landed(db: Path, boards: Path, pid: int, resumed: bool, elapsed: float) -> Landed:
    steps = query(db, "SELECT MAX(step) FROM steps WHERE run = 1")
    snap = query(db, "SELECT MAX(step) FROM snapshots WHERE run = 1")
    return Landed(
        pid, resumed, elapsed,
        run=bool(query(db, "SELECT id FROM runs WHERE id = 1")),
        step=int(steps[0][0] or 0) if steps else 0,
        checkpoint=snap[0][0] if snap else None,
        epochs=len(query(db, "SELECT epoch FROM epochs WHERE run = 1")),
        connects=len(query(db, "SELECT id FROM events WHERE run = 1 AND kind = 'connect'")),
        flash=flash_steps(boards),
    )  # fmt: skip


def _status(db: Path) -> str | None:
    rows = query(db, "SELECT status FROM runs WHERE id = 1")
    return rows[0][0] if rows else None


@dataclass
class Crashes:
    """What crash_repeatedly did."""

    seed: int
    landed: list[Landed]  # where each kill landed
    resumes: list[int]  # pid of every `--resume` process started
    out: dict | None  # JSON of the process that finished the run (None: a killed one did)
    last: int | None  # pid of the resume that finished the run
    error: str | None = None  # how a process that was not killed failed

    def report(self, name: str) -> str:
        lines = [f"{name}: INSITU_CRASH_SEED={self.seed}, {len(self.landed)} kills, "
                 f"{len(self.resumes)} resumes"]  # fmt: skip
        lines += [f"  kill {i + 1}: {ld}" for i, ld in enumerate(self.landed)]
        if self.error is not None:
            lines.append(f"  then {self.error}")
        elif self.out is None:
            lines.append("  the run was finished by a process killed before it exited")
        return "\n".join(lines)


@dataclass
class Timing:
    """The clean run's timeline: start-up (spawn to its step-0 checkpoint) and, for each of
    its checkpoints, the seconds from it to the end (the `end` event)."""

    startup: float
    left: dict[int, float]

    def remaining(self, ckpt: int) -> float:
        """About how long a process resuming from checkpoint `ckpt` lives."""
        return self.startup + self.left.get(ckpt, max(self.left.values()))

    def __str__(self) -> str:
        return f"{self.startup:.2f} s to its first checkpoint, {self.left[0]:.2f} s more to the end"


# how to kill one process: (command, random stream) -> how it ended
Kill = Callable[[list[str], random.Random], Ended]


def at_random(db: Path, timing: Timing, cwd: Path) -> Kill:
    """SIGKILL at a random moment in the first 90 % of the process's expected life."""

    def kill(cmd: list[str], rng: random.Random) -> Ended:
        ckpt = query(db, "SELECT MAX(step) FROM snapshots WHERE run = 1")
        life = timing.remaining(int(ckpt[0][0] or 0) if ckpt else 0)
        return kill_after(cmd, cwd, rng.uniform(0.0, 0.9 * life))

    return kill


def in_a_save(db: Path, cwd: Path) -> Kill:
    """SIGKILL 0–4 ms after the process commits a new snapshot row: while it broadcasts
    `save` to the boards (~3 ms for 14 in-process boards)."""

    def kill(cmd: list[str], rng: random.Random) -> Ended:
        rows = query(db, "SELECT MAX(step) FROM snapshots WHERE run = 1")
        before = rows[0][0] if rows and rows[0][0] is not None else -1

        def saving(_: float) -> bool:
            now = query(db, "SELECT MAX(step) FROM snapshots WHERE run = 1")
            return bool(now) and now[0][0] is not None and now[0][0] > before

        return kill_when(cmd, cwd, saving, then=rng.uniform(0.0, 0.004))

    return kill


def crash_repeatedly(
    train: list[str], db: Path, kills: int, kill: Kill, seed: int, cwd: Path
) -> Crashes:
    """Run `train` (run 1 of store `db`, with --json) and `kill` it `kills` times; after a
    kill, `--resume 1` (or `train` again when the run row was not written yet), killed the
    same way; then one `--resume 1` to the end. A process that finishes the run before its
    kill comes ends the series early."""
    rng = random.Random(seed)
    resume = [*INSITU, "train", "--resume", "1", "--store", str(db), "--json", "--quiet"]
    got = Crashes(seed, [], [], None, None)
    while _status(db) != "finished":
        resumed = _status(db) is not None
        cmd = resume if resumed else train
        end = kill(cmd, rng) if len(got.landed) < kills else kill_after(cmd, cwd, 300.0)
        if resumed:
            got.resumes.append(end.pid)
        if end.killed:
            got.landed.append(_landed(db, boards_dir(db), end.pid, resumed, end.elapsed))
            continue
        if end.returncode != 0:  # reported after the kills are printed
            got.error = f"pid {end.pid} exited {end.returncode}: {end.stderr[-800:]}"
            break
        got.out = json.loads(end.stdout)  # it finished the run before its kill came
        got.last = end.pid if resumed else None
        break
    return got


def check_store(db: Path, total: int, got: Crashes) -> None:
    """Finished; steps 1..total once each; one resume event per resume that got going."""
    assert got.error is None, got.error
    with RunStore(db) as st:
        assert st.run(1)["status"] == "finished"
        assert [s["step"] for s in st.steps(1)] == list(range(1, total + 1))
        pids = [e["detail"]["pid"] for e in st.events(1) if e["kind"] == "resume"]
        kinds = [e["kind"] for e in st.events(1)]
    assert len(pids) == len(set(pids)) and set(pids) <= set(got.resumes)
    assert kinds[-1] == "end"
    if got.last is not None:
        assert got.last in pids
    # a resume writes its event before it connects or trains: a resumed process that added
    # a connect event or a new step must have left its resume event
    connects, step = 0, 0
    for ld in got.landed:
        if ld.resumed and (ld.connects > connects or ld.step > step):
            assert ld.pid in pids, f"{ld}: no resume event"
        connects, step = ld.connects, ld.step


def same_as_clean(db: Path, clean_db: Path) -> None:
    """Every step's loss, every score and every checkpoint (k, optimiser state) of run 1 are
    the clean run's, bit for bit."""
    steps = "SELECT epoch, step, loss, max_dk, at_bound FROM steps WHERE run = 1 ORDER BY step"
    epochs = ("SELECT epoch, train_loss, test_loss, train_accuracy, test_accuracy FROM epochs "
              "WHERE run = 1 ORDER BY epoch")  # fmt: skip
    snaps = "SELECT step, epoch, k, opt FROM snapshots WHERE run = 1 ORDER BY step"
    for sql in (steps, epochs, snaps):
        assert query(db, sql) == query(clean_db, sql), sql.split()[-6]


@dataclass
class Clean:
    """The uninterrupted run (same seed, a store of its own)."""

    args: list[str]
    out: dict  # its JSON
    db: Path
    timing: Timing
    steps: int


def clean_run(args: list[str], tmp: Path, steps: int) -> Clean:
    db = tmp / "s.sqlite"
    t0 = time.time()
    out = run_json([*INSITU, *args, "--store", str(db), "--json", "--quiet"], tmp)[0]
    end = query(db, "SELECT time FROM events WHERE run = 1 AND kind = 'end'")[0][0]
    snaps = dict(query(db, "SELECT step, time FROM snapshots WHERE run = 1"))
    timing = Timing(snaps[0] - t0, {s: end - t for s, t in snaps.items()})
    return Clean(args, out, db, timing, steps)


def check(got: Crashes, db: Path, clean: Clean) -> None:
    """The store (check_store, same_as_clean) and the JSON of the process that finished."""
    check_store(db, clean.steps, got)
    same_as_clean(db, clean.db)
    if got.out is not None:
        assert got.out["run"] == 1
        assert np.array_equal(got.out["k_final"], clean.out["k_final"])
        assert got.out["test_accuracy"] == clean.out["test_accuracy"]
        assert [h["epoch"] for h in got.out["history"]] == [
            h["epoch"] for h in clean.out["history"]
        ]


def check_gradients(db: Path) -> None:
    """The in-situ run's gradient checks (epochs 0 and 2), 28 bonds each, none missing."""
    with RunStore(db) as st:
        grads = st.gradients(1)
    assert sorted({g["epoch"] for g in grads}) == [0, 2] and len(grads) == 2 * 28


def _resume(db: Path, cwd: Path) -> Crashes:
    resume = [*INSITU, "train", "--resume", "1", "--store", str(db), "--json", "--quiet"]
    out, end = run_json(resume, cwd)
    return Crashes(0, [], [end.pid], out, end.pid)


def _resume_event(db: Path) -> dict:
    with RunStore(db) as st:
        return next(e for e in st.events(1) if e["kind"] == "resume")["detail"]


@pytest.fixture(scope="module")
def insitu_clean(tmp_path_factory: pytest.TempPathFactory) -> Clean:
    """14 emulated ideal boards, Iris, 2 epochs = 14 steps, a checkpoint every 2 steps (and
    at epoch ends), gradient checks at epochs 0 and 2 (the default)."""
    args = ["train", str(LI_MAO), "--task", "iris", "--epochs", "2", "--seed", "1"]
    args += ["--method", "insitu", "--profile", "ideal", "--snapshot-every", "2"]
    return clean_run(args, tmp_path_factory.mktemp("clean"), 14)


def test_insitu_ideal_killed_at_random_points_resumes_to_the_clean_result(tmp_path, insitu_clean):
    """4 kills of the in-situ run on emulated ideal boards."""
    db = tmp_path / "s.sqlite"
    train = [*INSITU, *insitu_clean.args, "--store", str(db), "--quiet", "--json"]
    kill = at_random(db, insitu_clean.timing, tmp_path)
    got = crash_repeatedly(train, db, 4, kill, _seed(), tmp_path)
    print(f"\n{got.report('in situ, ideal boards')}\n  clean run {insitu_clean.timing}")
    check(got, db, insitu_clean)
    check_gradients(db)
    with RunStore(db) as st:
        boots = [e["detail"]["boots"] for e in st.events(1) if e["kind"] == "resume"]
    # every resume booted every board from its flash again: each board's boot count grows
    for board in boots[0]:
        counts = [b[board] for b in boots]
        assert counts == sorted(set(counts)), (board, counts)


def test_insilico_killed_at_random_points_resumes_to_the_clean_result(tmp_path):
    """5 kills of an in-silico Iris run (400 epochs = 2800 steps, checkpoints at epoch ends)."""
    args = ["train", str(LI_MAO), "--task", "iris", "--epochs", "400", "--seed", "3"]
    (tmp_path / "clean").mkdir()
    clean = clean_run(args, tmp_path / "clean", 7 * 400)
    db = tmp_path / "s.sqlite"
    train = [*INSITU, *args, "--store", str(db), "--quiet", "--json"]
    got = crash_repeatedly(train, db, 5, at_random(db, clean.timing, tmp_path), _seed(), tmp_path)
    print(f"\n{got.report('in silico')}\n  clean run {clean.timing}")
    check(got, db, clean)


def test_insitu_resumes_when_a_kill_split_the_boards_save(tmp_path, insitu_clean):
    """A kill in the middle of the snapshot's `save` broadcast leaves some boards' flash at
    the new checkpoint and the others' at the one before. Made here by a real kill (once the
    store holds step 6) and then, for boards 1–7, the flash as it was before their last save:
    state.bak back in place of state.json."""
    db = tmp_path / "s.sqlite"
    kill_at_step([*INSITU, *insitu_clean.args, "--store", str(db), "--quiet"], db, 6, tmp_path)
    boards = boards_dir(db)
    before = flash_steps(boards)
    for bid in map(str, range(1, 8)):
        shutil.copyfile(boards / bid / "state.bak", boards / bid / "state.json")
        (boards / bid / "state.bak").unlink()
    split = flash_steps(boards)
    print(f"\nboards' flash (step) after the kill {before}; split {split}")
    assert len(set(split.values())) == 2, split
    check(_resume(db, tmp_path), db, insitu_clean)
    assert _resume_event(db)["from_step"] == min(split.values())  # the one all boards held


def test_insitu_killed_in_its_saves_resumes_to_the_clean_result(tmp_path, insitu_clean):
    """3 kills aimed at the `save` broadcast that follows a snapshot row (each resumed
    process is killed in its first new save): most split the boards' flash."""
    db = tmp_path / "s.sqlite"
    train = [*INSITU, *insitu_clean.args, "--store", str(db), "--quiet", "--json"]
    got = crash_repeatedly(train, db, 3, in_a_save(db, tmp_path), _seed(), tmp_path)
    split = sum(len(set(ld.flash.values())) > 1 for ld in got.landed)
    print(f"\n{got.report('in situ, kills in saves')}\n  {split} left the boards split")
    check(got, db, insitu_clean)
    check_gradients(db)


KILL_WHEN = {
    # while the boards connect and tare, before the step-0 checkpoint: the run starts again
    "run row written": "SELECT id FROM runs",
    # the epoch-0 scores are the last record of epoch 0: its gradient check came before
    "epoch 0 scored": "SELECT epoch FROM epochs WHERE epoch = 0",
}


@pytest.mark.parametrize("when", list(KILL_WHEN))
def test_insitu_killed_at_a_chosen_point_resumes_to_the_clean_result(tmp_path, insitu_clean, when):
    """Killed as soon as the store holds a chosen row (polled every 2 ms), then resumed."""
    db = tmp_path / "s.sqlite"
    cmd = [*INSITU, *insitu_clean.args, "--store", str(db), "--quiet"]
    killed_when(cmd, tmp_path, lambda _: bool(query(db, KILL_WHEN[when])))
    ckpts = [r[0] for r in query(db, "SELECT step FROM snapshots")]
    grads = query(db, "SELECT DISTINCT epoch FROM gradients")
    print(f"\nkilled when {when}: checkpoints {ckpts}, gradient checks {grads}")
    check(_resume(db, tmp_path), db, insitu_clean)
    assert _resume_event(db)["from_step"] == (ckpts[-1] if ckpts else 0)
    check_gradients(db)


def test_boards_that_stay_powered_resume_after_a_host_kill(tmp_path):
    """Boards on serial ports (MicroPython processes on ptys) outlive the host powered: after
    the kill their RAM is ahead of their flash (the step in flight, or a step whose snapshot
    row did not get in). The resume rolls every board back to the store's checkpoint with
    `load step=` and ends as the run on in-process boards (behaviour task, 10 epochs of one
    step, a checkpoint after each)."""
    from insitu.emulator.mplab import MicroPythonLab
    from insitu.network.schema import load_network

    args = ["train", str(LI_MAO), "--task", "behaviour", "--epochs", "10", "--seed", "1"]
    args += ["--method", "insitu", "--profile", "ideal", "--gradient-epochs", ""]
    (tmp_path / "clean").mkdir()
    clean = clean_run(args, tmp_path / "clean", 10)
    at = random.Random(_seed()).randint(1, 9)
    db = tmp_path / "s.sqlite"
    with MicroPythonLab(load_network(LI_MAO), "ideal") as lab:
        ports = [a for p in lab.ports().values() for a in ("--port", p)]
        kill_at_step(
            [*INSITU, *args, "--family", "emu", "--uncalibrated", *ports, "--store", str(db)],
            db, at, tmp_path,
        )
        ckpt = query(db, "SELECT MAX(step) FROM snapshots")[0][0]
        print(f"\nkilled at step {at}, newest checkpoint {ckpt}")
        got = _resume(db, tmp_path)
    check(got, db, clean)
    resumed = _resume_event(db)
    assert set(resumed["boots"].values()) == {1}  # nobody rebooted: the boards were rolled back
    assert resumed["from_step"] == ckpt


def test_board_power_cycled_mid_run_recovers_in_place(tmp_path):
    """Node reboot under `insitu train` (issue 7 part 3, from the command line): a board on a
    serial port loses power in the middle of the run; the host notices (boot count, or a reply
    that never comes), takes every board back to the run's last checkpoint and trains on in the
    same process (--recover). The run ends as an uninterrupted one: same steps, same scores,
    same final stiffness."""
    from runproc import Running, max_step

    from insitu.emulator.mplab import MicroPythonLab
    from insitu.network.schema import load_network

    args = ["train", str(LI_MAO), "--task", "behaviour", "--epochs", "10", "--seed", "1"]
    args += ["--method", "insitu", "--profile", "ideal", "--gradient-epochs", ""]
    (tmp_path / "clean").mkdir()
    clean = clean_run(args, tmp_path / "clean", 10)
    rng = random.Random(_seed())
    at, later = rng.randint(2, 8), rng.uniform(0.0, 0.3)  # lands in a step, score or save
    db = tmp_path / "s.sqlite"
    with MicroPythonLab(load_network(LI_MAO), "ideal") as lab:
        ports = [a for p in lab.ports().values() for a in ("--port", p)]
        run = Running([*INSITU, *args, "--family", "emu", "--uncalibrated", *ports, "--store",
                       str(db), "--json", "--quiet"], tmp_path)  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while max_step(db) < at and run.proc.poll() is None:
                assert time.monotonic() < deadline, "run too slow"
                time.sleep(0.002)
            time.sleep(later)
            lab.boards[2].power_cycle()
            out, err = run.output()
        finally:
            run.close()
    assert run.proc.returncode == 0, err[-1500:]
    print(f"\nboard 2 power-cycled {later:.3f} s after step {at}:\n{err.strip()}")
    assert "continues from its last checkpoint" in err
    got = json.loads(out)
    assert np.array_equal(got["k_final"], clean.out["k_final"])
    assert got["test_accuracy"] == clean.out["test_accuracy"]
    same_as_clean(db, clean.db)
    with RunStore(db) as st:
        assert st.run(1)["status"] == "finished"
        assert [s["step"] for s in st.steps(1)] == list(range(1, 11))
        ev = st.events(1)
    resumed = [e["detail"] for e in ev if e["kind"] == "resume"]
    assert len(resumed) == 1 and resumed[0]["after"]  # recovered in place, once
    assert resumed[0]["boots"]["2"] == 2  # board 2 came back from its flash
    counts = "SELECT step, measurements FROM snapshots WHERE run = 1 ORDER BY step"
    assert query(db, counts) == query(clean.db, counts)  # loadings not counted twice


# Every method under the one training loop (issue 15): Iris, seed 2, emulated ideal boards
# (in silico: none), a checkpoint every 2 steps and at every epoch's end; epochs so that each
# clean run trains for 2-5 s after a start-up of ~0.6 s (7 steps per epoch)
EVERY_METHOD = {
    "insilico": 600,
    "insitu": 6,
    "coupled": 3,
    "spsa": 6,
    "fd": 1,
    "pat": 8,
    "insilico-write": 600,
    "superposed": 40,
}


def test_the_crash_test_covers_every_method() -> None:
    from insitu.trainers import METHODS

    assert set(EVERY_METHOD) == set(METHODS)


@pytest.mark.parametrize("method", list(EVERY_METHOD))
def test_every_method_killed_at_random_points_resumes_to_the_clean_result(tmp_path, method):
    """3 SIGKILLs at random points of `insitu train --method M` and of its resumes, then a
    resume to the end: the store and the result are the uninterrupted run's, bit for bit."""
    epochs = EVERY_METHOD[method]
    args = ["train", str(LI_MAO), "--task", "iris", "--epochs", str(epochs), "--seed", "2"]
    args += ["--method", method, "--snapshot-every", "2"]
    if method != "insilico":
        args += ["--profile", "ideal"]
    (tmp_path / "clean").mkdir()
    clean = clean_run(args, tmp_path / "clean", 7 * epochs)
    db = tmp_path / "s.sqlite"
    train = [*INSITU, *args, "--store", str(db), "--quiet", "--json"]
    got = crash_repeatedly(train, db, 3, at_random(db, clean.timing, tmp_path), _seed(), tmp_path)
    print(f"\n{got.report(method)}\n  clean run {clean.timing}")
    check(got, db, clean)


def test_the_demo_killed_mid_run_resumes_to_the_end(tmp_path):
    """`insitu demo` is a run like any other: killed at a step, `insitu train --resume 1`
    finishes it with the uninterrupted demo's result (ideal boards: bit for bit); it used to
    store an incomplete task spec and the resume ended in an AttributeError."""
    demo = [*INSITU, "demo", "--epochs", "3", "--seed", "1", "--profile", "ideal"]
    (tmp_path / "clean").mkdir()
    clean_db = tmp_path / "clean" / "s.sqlite"
    end = kill_after([*demo, "--store", str(clean_db)], tmp_path / "clean", 300.0)
    assert end.returncode == 0, end.stderr[-800:]
    db = tmp_path / "s.sqlite"
    kill_at_step([*demo, "--store", str(db)], db, 10, tmp_path)
    assert query(db, "SELECT status FROM runs WHERE id = 1") == [("running",)]
    out, _ = run_json([*INSITU, "train", "--resume", "1", "--store", str(db), "--json",
                       "--quiet"], tmp_path)  # fmt: skip
    with RunStore(db) as st:
        assert st.run(1)["status"] == "finished"
        assert [s["step"] for s in st.steps(1)] == list(range(1, 22))
    same_as_clean(db, clean_db)
    with RunStore(clean_db) as st:
        clean_k = st.snapshots(1)[-1]["k"]
    assert out["k_final"] == clean_k
