"""Connected rigs: boards on serial ports, or emulated boards behind the same session API."""

from __future__ import annotations

from pathlib import Path

from insitu.emulator.hardware import Profile
from insitu.emulator.inprocess import InProcessLab
from insitu.network.schema import Network
from insitu.rig.session import Rig, expected_configs


def port_rig(
    network: Network,
    ports: list[str],
    family: str | None = None,
    pins: str | None = None,
    timeout: float = 2.0,
    profile: str | None = None,
) -> Rig:
    """A connected Rig over boards on these serial ports, flashed with ``family``/``pins``
    (their configs are generated the way `insitu flash` deployed them, for ``profile``'s
    phase timing if given). Raises FlashError,
    LinkError or RigError with a one-line message; no link is left open on failure."""
    from insitu.deploy.flash import deploy_configs
    from insitu.links import SerialLink

    extra = {} if profile is None else {"profile": profile}
    configs = deploy_configs(network, family=family, pins=pins, **extra)
    links = []
    try:
        links = [SerialLink(port) for port in ports]
        rig = Rig(network, links, configs=configs, timeout=timeout)
        rig.connect()
    except Exception:
        for ln in links:
            ln.close()
        raise
    return rig


def emulated_rig(
    network: Network,
    profile: str | Profile = "ideal",
    seed: int = 0,
    period_ms: int = 10,
    lab_network: Network | None = None,
    flash_dir: str | Path | None = None,
    pins: str | None = None,
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
        flash_dir=flash_dir, pins=pins,
    )
    configs = expected_configs(network, lab.calibration, period_ms=period_ms)
    if lab.pinmap is not None:  # pin-level boards: the configs as the pin map wires them
        from insitu.hardware.pinmap import apply_pins

        configs = {b: apply_pins(c, lab.pinmap) for b, c in configs.items()}
    rig = Rig(network, lab.link(), configs=configs, **rig_options)
    rig.connect()
    return lab, rig
