"""Items 2, 3, 5 and 6 of docs/reliability.md on in-process emulated boards (ideal profile).

The runs are Iris on the Li & Mao network cut to 32 training and 8 test samples (2 steps per
epoch) so the suite stays small; scripts/reliability_*.py in the docs run the full ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from insitu.emulator import faults
from insitu.emulator.faults import FaultyLink
from insitu.emulator.inprocess import InProcessLab
from insitu.network.schema import Network, load_network
from insitu.rig.lab import expected_configs, open_rig
from insitu.rig.session import Rig, RigError
from insitu.tasks import make_task
from insitu.tasks.base import Task
from insitu.trainers import insitu
from insitu.trainers.common import TrainConfig

LI_MAO = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"


@pytest.fixture(scope="module")
def net() -> Network:
    return load_network(LI_MAO)


@pytest.fixture(scope="module")
def task(net: Network) -> Task:
    t = make_task("iris", net, 0)
    return dataclasses.replace(t, train=t.train[:32], test=t.test[:8])


@pytest.fixture(scope="module")
def clean(net: Network, task: Task) -> insitu.InSituResult:
    _, rig = open_rig(net, profile="ideal", seed=0)
    return insitu.train(net, task, TrainConfig(epochs=2, seed=0, lr=3.0), rig=rig, eval_every=2)


def _rig(net: Network, wrap=None, retries: int = 3) -> tuple[InProcessLab, Rig, object]:
    lab = InProcessLab(net, "ideal", seed=0)
    link = lab.link() if wrap is None else wrap(lab, lab.link())
    rig = Rig(net, link, configs=expected_configs(net, lab.calibration), retries=retries)
    rig.connect()
    return lab, rig, link


def test_faulty_links_give_the_clean_stiffness_exactly(net, task, clean):
    """1 % of bytes bit-flipped and 1 % of lines lost, both ways: same k to the last bit."""
    lab, rig, link = _rig(
        net, lambda lab, ln: FaultyLink(ln, corrupt=0.01, drop_line=0.01, seed=1), retries=60
    )
    cfg = TrainConfig(epochs=2, seed=0, lr=3.0)
    r = insitu.train(net, task, cfg, rig=rig, eval_every=2, checkpoint_every=1, recover=5)
    assert np.array_equal(r.k_final, clean.k_final)
    assert r.final.test_accuracy == clean.final.test_accuracy
    c = r.counters
    st = link.stats
    assert st["read"]["corrupted"] > 1000 and st["write"]["lines_dropped"] > 10
    assert c["retries"] > 0 and c["corrupt"] > 0
    print(f"\nlink faults: {r.steps} steps, retries {c['retries']}, corrupt {c['corrupt']}, "
          f"recoveries {r.recoveries}, retries/step {c['retries'] / r.steps:.0f}")  # fmt: skip


def test_faulty_link_lines_split_and_merge_like_a_byte_stream():
    class Echo:
        name = "echo"

        def __init__(self) -> None:
            self.got: list[str] = []

        def send(self, line: str) -> None:
            self.got.append(line)

        def receive(self, timeout: float) -> str | None:
            return self.got.pop(0) if self.got else None

        def close(self) -> None:
            pass

    a, b = Echo(), Echo()
    la, lb = FaultyLink(a, corrupt=0.05, seed=3), FaultyLink(b, corrupt=0.05, seed=3)
    for i in range(200):
        la.send(f"line {i} " + "x" * 40)
        lb.send(f"line {i} " + "x" * 40)
    assert a.got == b.got  # same seed, same damage
    assert len(a.got) != 200 or any("x" * 40 not in g for g in a.got)
    assert la.stats["write"]["corrupted"] > 0


class Trigger:
    """A link that does something to the lab right after the n-th line of a given op is sent
    (retries count): power-cycle a board in the middle of a phase, break a sensor mid-run."""

    def __init__(
        self, inner, op: str, actions: dict[int, Callable[[], object]], before: bool = False
    ) -> None:
        self.inner, self.op, self.actions, self.before = inner, op, actions, before
        self.name = inner.name
        self.virtual = True
        self.count = 0
        self.fired = 0

    def send(self, line: str) -> None:
        if not self.before:
            self.inner.send(line)
        if f" {self.op} " in line:
            self.count += 1
            if self.count in self.actions:
                self.actions[self.count]()
                self.fired += 1
        if self.before:  # the action lands before the line does
            self.inner.send(line)

    def receive(self, timeout: float) -> str | None:
        return self.inner.receive(timeout)

    def close(self) -> None:
        self.inner.close()


def test_node_reboot_mid_phase_rolls_back_and_matches_clean(net, task, clean):
    # board 2 carries an input force and an output sensor; reboot it right after the 5th
    # measure broadcast (a score at epoch 0: tare is #1, the scores #2..#41), the 50th (a forward
    # phase of step 1) and the 120th (an adjoint phase of step 2, counting the repeats)
    lab, rig, link = _rig(
        net,
        lambda lab, ln: Trigger(ln, "measure", {n: lambda: lab.reboot(2) for n in (5, 50, 120)}),
    )
    cfg = TrainConfig(epochs=2, seed=0, lr=3.0)
    r = insitu.train(net, task, cfg, rig=rig, eval_every=2, checkpoint_every=1, recover=5)
    assert link.fired == 3 and r.recoveries == 3
    assert rig.boards["2"].boots == 4
    assert np.array_equal(r.k_final, clean.k_final)
    node = lab.nodes[2]
    assert node.persist_status == "ok" and node.ckpt == r.steps  # came back from its flash


def test_reboot_between_update_and_save_and_during_update(net, task, clean):
    # the update line reaches board 5, which applies it, then reboots before its save (#1),
    # and once more at the third update line sent
    lab, rig, link = _rig(
        net, lambda lab, ln: Trigger(ln, "update", {n: lambda: lab.reboot(5) for n in (1, 3)})
    )
    cfg = TrainConfig(epochs=2, seed=0, lr=3.0)
    r = insitu.train(net, task, cfg, rig=rig, eval_every=2, checkpoint_every=1, recover=5)
    assert link.fired == 2 and r.recoveries >= 2
    assert np.array_equal(r.k_final, clean.k_final)


def test_stuck_and_dead_sensors_found_frozen_and_reported(net, task):
    bd = next(b for b in net.boards if len(b.bonds) >= 2)
    b0, b1 = bd.bonds[0], bd.bonds[1]

    def fail(lab: InProcessLab) -> None:
        faults.stuck_sensor(lab.world, bd.id, 0, 123456.0)
        faults.dead_sensor(lab.world, bd.id, 1)

    # both gauges fail after the scores at epoch 0 (measure #42 is step 1's first phase)
    lab, rig, _ = _rig(net, lambda lab, ln: Trigger(ln, "measure", {42: lambda: fail(lab)}))
    cfg = TrainConfig(epochs=2, seed=0, lr=3.0)
    r = insitu.train(net, task, cfg, rig=rig, eval_every=2, checkpoint_every=1, recover=5)
    kinds = {(a, e["ch"]): e["kind"] for a, e in rig.events if e.get("ev") == "fault"}
    assert kinds == {(str(bd.id), 0): "stuck", (str(bd.id), 1): "dead"}
    assert rig.held[str(bd.id)] == [0, 1]
    # frozen: the two bonds end where training found them; every other bond learned
    assert r.k_final[b1] == r.k_init[b1]
    assert abs(r.k_final[b0] - r.k_init[b0]) < 0.5 * np.max(np.abs(r.k_final - r.k_init))
    others = np.setdiff1d(np.arange(net.n_bonds), [b0, b1])
    assert np.count_nonzero(r.k_final[others] != r.k_init[others]) >= len(others) - 3
    ids = net.node_ids
    text = "\n".join(r.faults)
    for b in (b0, b1):
        assert f"bond {ids[net.bonds[b, 0]]}-{ids[net.bonds[b, 1]]} (#{b}) frozen" in text
    assert f"node {bd.node}" in text and "sensor stuck" in text and "sensor dead" in text
    print("\n" + text)


def test_broken_bond_mid_run_relearns(net, task):
    lab, rig, _ = _rig(net)
    cfg = TrainConfig(epochs=3, seed=0, lr=3.0)
    a = insitu.train(net, task, cfg, rig=rig, eval_every=3)
    bond = next(b for b in range(net.n_bonds) if faults.break_bond(lab.world, b) is None)
    loss_after, acc_after = insitu.evaluate(rig, task, task.train, insitu.Phases())
    b = insitu.train(net, task, TrainConfig(epochs=3, seed=1, lr=3.0), rig=rig, eval_every=3)
    assert b.final.train_loss < loss_after  # relearned with the bond gone
    acc = (a.final.train_accuracy, acc_after, b.final.train_accuracy)
    print(f"\ndamage: bond {bond} broken; train accuracy before/right after/retrained {acc}")


def test_reboot_just_before_a_snapshot_save_never_relabels_a_checkpoint(net, task, tmp_path):
    """Board 2 loses power just before the run store's 3rd snapshot `save` reaches it: it boots
    into the previous checkpoint and must not save that state under the new label (it refuses:
    `step: state is checkpoint 1`). Resume then finds that checkpoint on every board."""
    from insitu.store import RunStore
    from insitu.store.recorder import Recorder, checkpoints
    from insitu.trainers.loop import rejoin

    lab, rig, link = _rig(
        net, lambda lab, ln: Trigger(ln, "save", {3: lambda: lab.reboot(2)}, before=True)
    )
    with RunStore(tmp_path / "s.sqlite") as store:
        run = store.create_run("insitu", task.name, 0, {}, net, "ideal")
        rec = Recorder(store, run, rig=rig)
        cfg = TrainConfig(epochs=2, seed=0, lr=3.0)
        with pytest.raises(RigError, match="state is checkpoint 1"):
            insitu.train(net, task, cfg, callbacks=[rec], rig=rig, eval_every=2,
                         checkpoint_every=1)  # fmt: skip
        assert link.fired == 1
        rig.recover(None)
        ckpt = rejoin(rig, checkpoints(store, run))
    assert ckpt.step == 1  # snapshots 0, 1, 2 in the store; board 2 never held 2
    assert {i["step"] for i in rig.broadcast("identify").values()} == {1}
