"""The session layer against in-process emulated boards: discovery, refusal, retries, phases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from insitu.emulator.inprocess import InProcessLab
from insitu.network.schema import Port, load_network
from insitu.rig import Rig, RigError, emulated_rig, expected_configs
from insitu_node.node import emulated
from insitu_node.protocol import codec

LI_MAO = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"


@pytest.fixture(scope="module")
def net():
    return load_network(LI_MAO)


class FlakyLink:
    """Wraps a link: drops chosen reply lines, adds noise and corrupt frames before replies."""

    def __init__(self, inner, drop_every: int = 0) -> None:
        self.inner = inner
        self.name = "flaky"
        self.drop_every = drop_every
        self.n = 0
        self.queue: list[str] = []

    def send(self, line: str) -> None:
        self.inner.send(line)
        self.queue += ["MicroPython v1.29 boot banner", "@1 5 3 ok {} *deadbeef"]

    def receive(self, timeout: float) -> str | None:
        if self.queue:
            return self.queue.pop(0)
        while True:
            line = self.inner.receive(timeout)
            if line is None:
                return None
            self.n += 1
            if self.drop_every and self.n % self.drop_every == 0:
                continue  # lost on the wire
            return line

    def close(self) -> None:
        self.inner.close()


def test_connect_identifies_every_board(net):
    lab, rig = emulated_rig(net, "ideal")
    assert sorted(int(a) for a in rig.boards) == [bd.id for bd in net.boards]
    assert all(b.firmware == "0.1.0" for b in rig.boards.values())
    assert rig.counters.sent == 1  # one identify broadcast on the one link


def test_missing_board_refused(net):
    lab = InProcessLab(net, "ideal")
    link = lab.link([bd.id for bd in net.boards if bd.id != 7])
    rig = Rig(net, link, configs=expected_configs(net, lab.calibration), retries=1)
    with pytest.raises(RigError, match=r"^board 7 \(node 7\) did not answer identify$"):
        rig.connect()


def test_wrong_config_hash_refused(net):
    lab = InProcessLab(net, "ideal")
    cfg = dict(lab.configs[9], period_ms=20)  # board 9 runs another config
    lab.nodes[9] = emulated(cfg, lab.world.bus(9), uid="emu-9")
    rig = Rig(net, lab.link(), configs=expected_configs(net, lab.calibration))
    with pytest.raises(RigError) as exc:
        rig.connect()
    msg = str(exc.value)
    assert msg.startswith("board 9 (node 9) runs config ") and "\n" not in msg
    assert "li-mao-2024 generates" in msg


def test_network_file_mismatch_refused(net, tmp_path):
    text = LI_MAO.read_text().replace("width = 0.002\n", "width = 0.0021\n")
    other = tmp_path / "li-mao-wider.toml"
    other.write_text(text)
    with pytest.raises(RigError, match=r"^board 1 \(node 1\) runs config [0-9a-f]{8}, network"):
        emulated_rig(load_network(other), "ideal", lab_network=net)


def test_wrong_firmware_refused(net, monkeypatch):
    import insitu_node.node as node_mod

    monkeypatch.setattr(node_mod, "VERSION", "0.0.9")
    with pytest.raises(RigError, match=r"^board 1 \(node 1\) runs firmware 0.0.9, expected 0.1.0"):
        emulated_rig(net, "ideal")


def test_retries_are_idempotent_and_noise_is_counted(net):
    lab = InProcessLab(net, "ideal")
    link = FlakyLink(lab.link(), drop_every=5)
    rig = Rig(net, link, configs=expected_configs(net, lab.calibration), retries=4)
    rig.connect()
    rig.forces_off()
    rig.apply_forces({Port(11, 1): -0.049})
    m = rig.measure("forward", tag=3)
    rig.apply_forces({Port(13, 1): 0.01})
    rig.measure("adjoint", tag=3, scale=2.0)
    rig.update(rule="adjoint", lr=1.0, opt="adam", batch=1)
    assert rig.counters.retries > 0
    assert rig.counters.skipped > 0 and rig.counters.corrupt > 0
    st = rig.state()
    # applied exactly once on every board, though some requests were sent twice
    assert {s["opt"]["t"] for s in st.values()} == {1}
    assert m.outputs([Port(13, 1)])[0] < 0


def test_broadcast_cost_and_measurement_mapping(net):
    lab, rig = emulated_rig(net, "ideal")
    rig.tare()
    sent = rig.counters.sent
    rig.apply_forces({Port(11, 1): -0.049, Port(10, 1): -0.02})
    m = rig.measure("forward", tag=1, v=True)
    assert rig.counters.sent - sent == 3  # two forces + one measure broadcast
    assert rig.counters.loadings == 2  # the tare's settling phase and this one
    np.testing.assert_allclose(m.e, lab.world.elongation(), rtol=0, atol=1e-15)
    u = lab.world.u()
    for port, val in m.u.items():
        assert val == pytest.approx(u[net.dof(port)], abs=1e-15)
    # switching loads turns the old ones off: only the new one acts
    rig.apply_forces({Port(12, 1): -0.03})
    f = lab.world.forces()
    assert f[net.dof(Port(12, 1))] == pytest.approx(-0.03)
    assert f[net.dof(Port(11, 1))] == 0.0 and f[net.dof(Port(10, 1))] == 0.0


def test_set_stiffness_and_refusals_name_the_board(net):
    lab, rig = emulated_rig(net, "ideal")
    k = np.linspace(110.0, 160.0, net.n_bonds)
    rig.set_stiffness(k)
    np.testing.assert_allclose(rig.stiffness(), k)
    k[5] = 500.0
    with pytest.raises(RigError, match=r"refused set: k\[\d\]: outside"):
        rig.set_stiffness(k)
    with pytest.raises(RigError, match=r"^board 11 \(node 11\) refused force: f: beyond"):
        rig.apply_forces({Port(11, 1): 20.0})


def test_non_frames_from_codec_are_skipped():
    # the codec distinguishes lines with no frame from corrupt frames; the rig counts them apart
    with pytest.raises(codec.NotFrame):
        codec.decode("MicroPython v1.29 on 2025-01-01")
    with pytest.raises(codec.FrameError):
        codec.decode("@1 5 3 ok {} *deadbeef")


def test_requests_are_built_from_the_firmware_schema(net):
    """A misspelt op or argument, or a missing required one, fails on the host, naming the op
    and the argument, before anything is sent (the node would answer err, one round trip and
    one confused operator later)."""
    from insitu.rig.session import RequestError

    _, rig = emulated_rig(net, "ideal")
    sent = rig.counters.sent
    with pytest.raises(RequestError, match=r"measure: argument 'setle_ms': unknown field"):
        rig.broadcast("measure", {"phase": "forward", "setle_ms": 5})
    with pytest.raises(RequestError, match=r"no op 'mesure'"):
        rig.broadcast("mesure", {"phase": "forward"})
    with pytest.raises(RequestError, match=r"update: argument 'lr' is required"):
        rig.request(net.boards[0], "update", {"rule": "adjoint"})
    assert rig.counters.sent == sent
    rig.measure("forward", settle_ms=5)  # the session's own requests pass the same check
    assert rig.counters.sent == sent + 1


def test_the_host_waits_past_the_nodes_own_measurement_deadline(net, monkeypatch):
    """One owner for the node's deadline (protocol.messages): the rig's timeout covers it."""
    from insitu.rig import session
    from insitu_node.protocol.messages import measure_deadline_ms

    _, rig = emulated_rig(net, "ideal")
    seen = []

    def broadcast(op, args=None, timeout=None, speakers=None):
        seen.append(timeout)
        raise RigError("stop")

    monkeypatch.setattr(rig, "broadcast", broadcast)
    with pytest.raises(RigError):
        rig.measure("forward", settle_ms=300, n=8)
    assert seen == [rig.timeout + (300 + measure_deadline_ms(8)) / 1000.0]
    assert measure_deadline_ms(8) == 1000 + 250 * 8  # an HX711 at 10 SPS: 100 ms a sample
    assert session.measure_deadline_ms is measure_deadline_ms


def test_rig_time_is_the_boards_clock(net):
    """`mark_time` reads rig time off one board's ticks_ms (pings): on virtual-time boards it
    is exactly the emulated time the phases took."""
    lab, rig = emulated_rig(net, "realistic", seed=2)
    t0 = lab.clock.now()
    assert rig.mark_time() == 0.0  # the first mark anchors
    rig.apply_forces({Port(11, 1): -0.02})
    rig.measure("free", settle_ms=2000, n=4)
    rig.forces_off()
    rig.measure("free", settle_ms=2000, n=4)
    spent = rig.mark_time()
    assert spent >= 4.0 and spent == pytest.approx(lab.clock.now() - t0, abs=0.011)
    assert rig.rig_seconds == spent and rig.counters.rig_ms == round(spent * 1000)
