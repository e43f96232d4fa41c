"""A rig on emulated boards: the in-process lab behind the same session API as a bench."""

from __future__ import annotations

from pathlib import Path

from insitu.emulator.hardware import Profile
from insitu.emulator.inprocess import InProcessLab
from insitu.network.schema import Network
from insitu.rig.session import Rig, expected_configs


def emulated_rig(
    network: Network,
    profile: str | Profile = "ideal",
    seed: int = 0,
    period_ms: int = 10,
    lab_network: Network | None = None,
    flash_dir: str | Path | None = None,
    **rig_options,
) -> tuple[InProcessLab, Rig]:
    """Start in-process boards for `network` and a connected Rig over one memory link.

    The expected configs are generated from `network` independently of the lab's own, so a
    lab built from another file (`lab_network`, for tests) is refused like a bench would be.
    ``flash_dir`` keeps the boards' flash on disk (see InProcessLab), so they can outlive the
    host and boot from it again.
    """
    lab = InProcessLab(
        lab_network or network, profile=profile, seed=seed, period_ms=period_ms,
        flash_dir=flash_dir,
    )
    configs = expected_configs(network, lab.calibration, period_ms=period_ms)
    rig = Rig(network, lab.link(), configs=configs, **rig_options)
    rig.connect()
    return lab, rig
